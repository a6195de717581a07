import type { VectorRecord, VectorStore } from "../../search/vector-store.ts";
import { DynamicBatcher } from "../../models/dynamic-batcher.ts";

/** `allNew`: the records' asset had no vectors before (see VectorStore.upsert). */
type Write = { projectId: string; records: VectorRecord[]; allNew: boolean };

/** Most records in one grouped write; a batch stops growing past it. */
const MAX_BATCH_WRITES = 64;

const batchers = new WeakMap<VectorStore, DynamicBatcher<Write, Error | null>>();

/**
 * The index stages of concurrent jobs write their vectors together: while one
 * write runs, the next ones queue, and then go as one upsert per project. Each
 * upsert is a merge (an append, for assets that had no vectors) and a new
 * version in the embedded store (and a request to Weaviate), so many small
 * writes cost far more than one of the same rows.
 * No write waits for company (no timer): a lone job writes at once. Each caller
 * gets its own project's outcome: one project's failed write fails only its jobs.
 */
export async function writeVectors(store: VectorStore, projectId: string, records: VectorRecord[], options: { allNew?: boolean } = {}): Promise<void> {
  let batcher = batchers.get(store);
  if (!batcher) {
    batcher = new DynamicBatcher<Write, Error | null>({ maxBatchSize: MAX_BATCH_WRITES, maxWaitMs: 0 }, (writes) => upsertByProject(store, writes));
    batchers.set(store, batcher);
  }
  const error = await batcher.runOne({ projectId, records, allNew: options.allNew === true });
  if (error) throw error;
}

/** One upsert per project, and within it one for appends and one for replacements. */
async function upsertByProject(store: VectorStore, writes: Write[]): Promise<Array<Error | null>> {
  const groups = new Map<string, Write>();
  const groupKey = (write: Write) => `${write.projectId}\u0000${write.allNew}`;
  for (const write of writes) {
    const group = groups.get(groupKey(write));
    if (group) group.records.push(...write.records);
    else groups.set(groupKey(write), { ...write, records: [...write.records] });
  }
  const outcomes = new Map<string, Error | null>();
  await Promise.all(
    [...groups].map(async ([key, { projectId, records, allNew }]) => {
      try {
        await store.upsert(projectId, records, { allNew });
        outcomes.set(key, null);
      } catch (error) {
        outcomes.set(key, error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
  return writes.map((write) => outcomes.get(groupKey(write))!);
}
