/**
 * `npm run bench -- <name>`: runs the default export of bench/<name>.ts.
 * Each bench compares against the raw engine underneath in the same run and
 * ends with one JSON line: {"bench":"<name>",...}.
 */
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const name = process.argv[2];
const available = fs
  .readdirSync(import.meta.dirname)
  .filter((file) => file.endsWith(".ts") && file !== "run.ts")
  .map((file) => file.slice(0, -3));
if (!name || !/^[\w-]+$/.test(name) || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>   (available: ${available.join(", ") || "none"})`);
  process.exit(2);
}
const bench = (await import(pathToFileURL(path.join(import.meta.dirname, `${name}.ts`)).href)) as {
  default: (args: string[]) => Promise<void>;
};
await bench.default(process.argv.slice(3));
// A bench that printed its line but does not end still holds something open (a connection, a worker, a timer):
// name what, and end with a failure instead of hanging. Unref'd, so a bench that closed everything exits at once.
setTimeout(() => {
  console.error(`bench ${name} ended but the process is still held by: ${process.getActiveResourcesInfo().join(", ")}`);
  process.exit(1);
}, 30_000).unref();
