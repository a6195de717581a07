import type { Transferable, Worker } from "node:worker_threads";

type Pending<Result> = { resolve(result: Result): void; reject(error: Error): void };
type Reply = { id?: number; error?: string; runMs?: number; type?: string };

/**
 * Calls to a worker thread that answers each message by its id: the plumbing
 * the inference thread and the text encoder thread share. The thread starts
 * on the first call; an idle thread does not keep the process alive. If it
 * dies, every call in flight fails with that error and the next call starts
 * a new thread.
 */
export class ThreadCalls<Result> {
  private worker: Worker | undefined;
  private pending = new Map<number, Pending<Result>>();
  private nextId = 0;
  /** Milliseconds the thread reports it computed, for benches. */
  busyMs = 0;

  /**
   * @param name how errors name the thread ("the inference thread")
   * @param start a new thread
   * @param resultOf the result in a successful reply
   */
  constructor(
    private readonly name: string,
    private readonly start: () => Worker,
    private readonly resultOf: (reply: Record<string, unknown>) => Result,
  ) {}

  call(message: Record<string, unknown>, transfer: Transferable[] = []): Promise<Result> {
    const worker = this.thread();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...message, id }, transfer);
    });
  }

  async close() {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      worker.on("message", (message: Reply) => message.type === "closed" && resolve());
      worker.once("exit", () => resolve());
    });
    worker.ref(); // an idle thread is unref'd: without this, nothing would keep the process alive to hear it close
    worker.postMessage({ type: "close" });
    await closed;
    await worker.terminate();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = this.start();
    worker.on("message", (message: Reply & Record<string, unknown>) => {
      if (message.id === undefined) return;
      this.busyMs += message.runMs ?? 0;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.error !== undefined) pending.reject(new Error(message.error));
      else pending.resolve(this.resultOf(message));
      // An idle thread must not keep the process alive.
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const pending of this.pending.values()) pending.reject(error);
      this.pending.clear();
    };
    worker.on("error", (error) => fail(error));
    worker.on("exit", (code) => fail(new Error(`${this.name} exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}
