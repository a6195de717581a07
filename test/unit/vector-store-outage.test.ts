import { describe, expect, it } from "vitest";
import { TesseraError } from "../../services/core/errors.ts";
import { isVectorStoreUnreachable, retryThroughVectorStoreOutage } from "../../services/search/vector-store-outage.ts";

const refused = () => Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8080"), { code: "ECONNREFUSED" }) });

describe("isVectorStoreUnreachable", () => {
  it("says yes to refused, reset, timed out, 5xx and gRPC UNAVAILABLE", () => {
    expect(isVectorStoreUnreachable(refused())).toBe(true);
    expect(isVectorStoreUnreachable(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }))).toBe(true);
    expect(isVectorStoreUnreachable(new Error("Weaviate request timed out with message: Request timed out after 30000ms"))).toBe(true);
    expect(isVectorStoreUnreachable(new Error("The request to Weaviate failed with status code: 503 and message: busy"))).toBe(true);
    expect(isVectorStoreUnreachable(new Error("Batch objects insert failed with message: /weaviate.v1.Weaviate/BatchObjects UNAVAILABLE: No connection established"))).toBe(true);
  });

  it("says no to a bad request and to anything else", () => {
    expect(isVectorStoreUnreachable(new Error("The request to Weaviate failed with status code: 422 and message: vector lengths don't match"))).toBe(false);
    expect(isVectorStoreUnreachable(new Error("Invalid input provided: tenant name"))).toBe(false);
    expect(isVectorStoreUnreachable(new Error("Weaviate rejected 2 of 2 vectors: invalid property"))).toBe(false);
    expect(isVectorStoreUnreachable(undefined)).toBe(false);
  });
});

describe("retryThroughVectorStoreOutage", () => {
  it("retries an unreachable store with growing, capped waits until it answers", async () => {
    let calls = 0;
    const waits: number[] = [];
    const result = await retryThroughVectorStoreOutage(
      async () => {
        if (++calls < 5) throw refused();
        return "written";
      },
      { budgetMs: 10_000, maxWaitMs: 40, firstWaitMs: 10, onRetry: (_error, { waitMs }) => waits.push(waitMs) },
    );
    expect(result).toBe("written");
    expect(calls).toBe(5);
    expect(waits).toHaveLength(4);
    // a random half to whole of 10, 20, 40, 40 (capped)
    for (const [index, ceiling] of [10, 20, 40, 40].entries()) {
      expect(waits[index]).toBeGreaterThanOrEqual(ceiling / 2);
      expect(waits[index]).toBeLessThanOrEqual(ceiling);
    }
  });

  it("fails a bad request at once, with its own error", async () => {
    let calls = 0;
    const bad = new Error("The request to Weaviate failed with status code: 422 and message: bad vector");
    await expect(retryThroughVectorStoreOutage(async () => { calls++; throw bad; }, { budgetMs: 10_000, maxWaitMs: 10 })).rejects.toBe(bad);
    expect(calls).toBe(1);
  });

  it("past the budget, a retryable SERVICE_UNAVAILABLE; a try that hangs does not stretch the budget", async () => {
    const started = Date.now();
    const outlasting = retryThroughVectorStoreOutage(async () => { throw refused(); }, { budgetMs: 200, maxWaitMs: 50, firstWaitMs: 20 });
    await expect(outlasting).rejects.toBeInstanceOf(TesseraError);
    await expect(outlasting).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE", details: { service: "vectorStore", budgetMs: 200 } });
    expect(Date.now() - started).toBeLessThan(1000);

    const hangingStart = Date.now();
    const hanging = retryThroughVectorStoreOutage(() => new Promise<never>(() => {}), { budgetMs: 150, maxWaitMs: 50 });
    await expect(hanging).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE" });
    expect(Date.now() - hangingStart).toBeLessThan(1000);
  });

  it("tells a try it was given up on (its signal aborts), so it can let go of what it holds", async () => {
    const signals: AbortSignal[] = [];
    const hanging = retryThroughVectorStoreOutage((signal) => (signals.push(signal), new Promise<never>(() => {})), { budgetMs: 100, maxWaitMs: 50 });
    await expect(hanging).rejects.toMatchObject({ code: "SERVICE_UNAVAILABLE" });
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);

    // A try that fails on its own is not aborted; one that answers neither.
    const seen: AbortSignal[] = [];
    let calls = 0;
    await retryThroughVectorStoreOutage(
      async (signal) => {
        seen.push(signal);
        if (++calls < 2) throw refused();
        return "written";
      },
      { budgetMs: 10_000, maxWaitMs: 10, firstWaitMs: 1 },
    );
    expect(seen.map((signal) => signal.aborted)).toEqual([false, false]);
  });

  it("with a budget of 0, one try and the store's own error", async () => {
    let calls = 0;
    await expect(retryThroughVectorStoreOutage(async () => { calls++; throw refused(); }, { budgetMs: 0, maxWaitMs: 10 })).rejects.toThrow("fetch failed");
    expect(calls).toBe(1);
  });
});
