// Run by lancedb-vector-store.ts in a child process at low priority: trains and commits one table's IVF_PQ index.
// A child, because training takes every core for minutes: run in the serving process it stalled that process's
// event loop up to 2 s (10 ms timers on 2 loaded cores: p99 51 ms, max 1958 ms; idle max 124 ms); in this child
// at nice 10 under a nice-0 parent, p99 41 ms, max 1034 ms (bench/README.md, "ann"). Argument: one JSON object { dir, table, column, name, numPartitions }.
// Prints one JSON line: { ok: true } or { ok: false, error }.
import os from "node:os";
import * as lancedb from "@lancedb/lancedb";

const { dir, table: tableName, column, name, numPartitions } = JSON.parse(process.argv[2] ?? "{}");
try {
  os.setPriority(10);
} catch {
  // Not allowed here (some containers): build at normal priority.
}
let db;
try {
  db = await lancedb.connect(dir);
  const table = await db.openTable(tableName);
  await table.createIndex(column, { name, replace: true, config: lancedb.Index.ivfPq({ distanceType: "cosine", numPartitions }) });
  console.log(JSON.stringify({ ok: true }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: error instanceof Error ? error.message : String(error) }));
  process.exitCode = 1;
} finally {
  db?.close();
}
