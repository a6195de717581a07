import fs from "node:fs";
import * as ort from "onnxruntime-node";
import { sessionTuning, type ExecutionChoice } from "./execution-provider.ts";
import { modelNotFound, toModelError } from "./model-errors.ts";

/**
 * One onnxruntime session per graph file per process, created on first use and
 * shared by every caller; a failed load is forgotten so a fixed file can load later.
 */
export class OnnxSessions {
  private sessions = new Map<string, Promise<ort.InferenceSession>>();

  constructor(
    private execution: ExecutionChoice,
    private intraOpThreads?: number,
  ) {}

  get(model: string, file: string): Promise<ort.InferenceSession> {
    let session = this.sessions.get(file);
    if (!session) {
      session = this.create(model, file);
      this.sessions.set(file, session);
      session.catch(() => this.sessions.delete(file));
    }
    return session;
  }

  private async create(model: string, file: string) {
    if (!fs.existsSync(file)) throw modelNotFound(model, `file ${file} is missing`, { file });
    try {
      return await ort.InferenceSession.create(file, {
        executionProviders: this.execution.providers,
        graphOptimizationLevel: "all",
        ...sessionTuning(this.intraOpThreads),
      });
    } catch (error) {
      throw toModelError(model, error);
    }
  }

  get size() {
    return this.sessions.size;
  }

  async close() {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (session) => (await session.catch(() => null))?.release()));
  }
}
