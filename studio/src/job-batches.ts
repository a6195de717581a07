export type Slots = { acquire(): Promise<() => void> };

/**
 * At most `n` at once, the rest wait their turn. A browser keeps about six
 * HTTP/1.1 connections per host and each open upload or subscription holds one,
 * so a drop of fifty files must not open fifty: the page's own queries would stall.
 */
export function limiter(n: number): Slots {
  let active = 0;
  const waiting: Array<() => void> = [];
  return {
    async acquire(): Promise<() => void> {
      if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
      active++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        active--;
        waiting.shift()?.();
      };
    },
  };
}

/**
 * Jobs followed on shared streams (`jobsEvents`) rather than one stream each: the returned function takes a job
 * (its id, and what the caller keeps with it), and `follow` is called with a batch of jobs once a slot is free. A
 * batch is every job given while it waited for its slot, at most `maxPerBatch` (the rest start the next batch);
 * jobs given after it started make the next one. `follow` calls `release` when its stream ends.
 */
export function batchedFollower<T>(
  slots: Slots,
  maxPerBatch: number,
  follow: (batch: Map<string, T>, release: () => void) => void,
): (jobId: string, value: T) => void {
  /** Jobs given and not in a batch yet; while there are any, one startBatch waits for a slot to take them. */
  const waiting = new Map<string, T>();
  async function startBatch() {
    const release = await slots.acquire();
    const batch = new Map([...waiting].slice(0, maxPerBatch));
    for (const id of batch.keys()) waiting.delete(id);
    if (waiting.size > 0) void startBatch();
    follow(batch, release);
  }
  return (jobId, value) => {
    const batchStarts = waiting.size === 0;
    waiting.set(jobId, value);
    if (batchStarts) void startBatch();
  };
}
