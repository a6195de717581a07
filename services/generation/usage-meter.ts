import type { Capability, TokenUsage } from "./language-model-provider.ts";

export type UsageEntry = TokenUsage & {
  alias: string;
  provider: string;
  model: string;
  capability: Capability;
  /** Tries this call took, the successful one included. */
  attempts: number;
  durationMs: number;
  /** The alias that failed over to this one. */
  fallbackFrom?: string;
};

/** What a job or a step spent: one entry per model call, and the totals (stored as Job.usage / StepRun.usage). */
export class UsageMeter {
  readonly calls: UsageEntry[] = [];

  add(entry: UsageEntry) {
    this.calls.push(entry);
  }

  get total(): TokenUsage {
    return this.calls.reduce(
      (sum, call) => ({
        promptTokens: sum.promptTokens + call.promptTokens,
        completionTokens: sum.completionTokens + call.completionTokens,
        totalTokens: sum.totalTokens + call.totalTokens,
      }),
      { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    );
  }

  toJSON() {
    return { ...this.total, calls: this.calls };
  }
}
