import type { VectorRecord, VectorStore } from "../../search/vector-store.ts";
import { DynamicBatcher } from "../models/dynamic-batcher.ts";

type Write = { projectId: string; records: VectorRecord[] };

/** Most records in one grouped write; a batch stops growing past it. */
const MAX_BATCH_WRITES = 64;

const batchers = new WeakMap<VectorStore, DynamicBatcher<Write, Error | null>>();

/**
 * The index stages of concurrent jobs write their vectors together: while one
 * write runs, the next ones queue, and then go as one upsert per project. Each
 * upsert is a merge and a new version in the embedded store (and a request to
 * Weaviate), so many small writes cost far more than one of the same rows.
 * No write waits for company (no timer): a lone job writes at once. Each caller
 * gets its own project's outcome: one project's failed write fails only its jobs.
 */
export async function writeVectors(store: VectorStore, projectId: string, records: VectorRecord[]): Promise<void> {
  let batcher = batchers.get(store);
  if (!batcher) {
    batcher = new DynamicBatcher<Write, Error | null>({ maxBatchSize: MAX_BATCH_WRITES, maxWaitMs: 0 }, (writes) => upsertByProject(store, writes));
    batchers.set(store, batcher);
  }
  const error = await batcher.runOne({ projectId, records });
  if (error) throw error;
}

async function upsertByProject(store: VectorStore, writes: Write[]): Promise<Array<Error | null>> {
  const byProject = new Map<string, VectorRecord[]>();
  for (const { projectId, records } of writes) byProject.set(projectId, [...(byProject.get(projectId) ?? []), ...records]);
  const outcomes = new Map<string, Error | null>();
  await Promise.all(
    [...byProject].map(async ([projectId, records]) => {
      try {
        await store.upsert(projectId, records);
        outcomes.set(projectId, null);
      } catch (error) {
        outcomes.set(projectId, error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
  return writes.map((write) => outcomes.get(write.projectId)!);
}
