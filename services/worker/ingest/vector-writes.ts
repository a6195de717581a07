import { untilAborted } from "../../core/abort.ts";
import type { UpsertOptions, VectorRecord, VectorStore } from "../../search/vector-store.ts";
import { DynamicBatcher } from "../../models/dynamic-batcher.ts";

/** `allNew`: the records' asset had no vectors before (see VectorStore.upsert). `signal`: the caller gave up. */
type Write = { projectId: string; records: VectorRecord[]; allNew: boolean; signal?: AbortSignal };

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
 * A caller whose signal aborts stops waiting at once; its write is dropped if it has not gone out, and an upsert
 * that only given-up callers wait for is told so, so the writes behind it are not held up by it.
 */
export async function writeVectors(
  store: VectorStore,
  projectId: string,
  records: VectorRecord[],
  options: UpsertOptions = {},
): Promise<void> {
  let batcher = batchers.get(store);
  if (!batcher) {
    batcher = new DynamicBatcher<Write, Error | null>({ maxBatchSize: MAX_BATCH_WRITES, maxWaitMs: 0 }, (writes) => upsertByProject(store, writes));
    batchers.set(store, batcher);
  }
  const { signal } = options;
  signal?.throwIfAborted();
  const written = batcher.runOne({ projectId, records, allNew: options.allNew === true, signal });
  const error = await (signal ? untilAborted(written, signal) : written);
  if (error) throw error;
}

/** One upsert per project, and within it one for appends and one for replacements. */
async function upsertByProject(store: VectorStore, writes: Write[]): Promise<Array<Error | null>> {
  const groups = new Map<string, { projectId: string; allNew: boolean; records: VectorRecord[]; signals: Array<AbortSignal | undefined> }>();
  const groupKey = (write: Write) => `${write.projectId}\u0000${write.allNew}`;
  for (const write of writes) {
    if (write.signal?.aborted) continue; // given up while it queued: not sent
    const group = groups.get(groupKey(write));
    if (group) {
      group.records.push(...write.records);
      group.signals.push(write.signal);
    } else groups.set(groupKey(write), { projectId: write.projectId, allNew: write.allNew, records: [...write.records], signals: [write.signal] });
  }
  const outcomes = new Map<string, Error | null>();
  await Promise.all(
    [...groups].map(async ([key, { projectId, records, allNew, signals }]) => {
      try {
        await store.upsert(projectId, records, { allNew, signal: allAborted(signals) });
        outcomes.set(key, null);
      } catch (error) {
        outcomes.set(key, error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
  // A write with no outcome was given up on before its group went out.
  return writes.map((write) => (outcomes.has(groupKey(write)) ? outcomes.get(groupKey(write))! : abortError(write.signal)));
}

/** Aborts once every one of the signals has; never, when any write has none (someone always waits for it). */
function allAborted(signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  if (signals.some((signal) => signal === undefined)) return undefined;
  const controller = new AbortController();
  const check = () => {
    if (signals.every((signal) => signal!.aborted)) controller.abort(signals.at(-1)!.reason);
  };
  for (const signal of signals) signal!.addEventListener("abort", check, { once: true });
  check();
  return controller.signal;
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error("the write was given up on");
}
