/**
 * Settles as `work` does, or rejects with `reason()` (the signal's reason by
 * default) as soon as `signal` aborts: for work that does not honour the
 * signal itself. The work may go on in the background; its outcome is then
 * ignored.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal, reason: () => unknown = () => signal.reason): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reason());
    if (signal.aborted) {
      work.catch(() => {});
      return onAbort();
    }
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
