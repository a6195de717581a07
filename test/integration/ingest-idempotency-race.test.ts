import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestContent } from "../../services/assets/ingest-service.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp();
  ({ projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const text = (body: string) => ({ bytes: Buffer.from(body), modality: "TEXT" as const, mimeType: "text/plain", source: "text" as const });

describe("ingests racing with one idempotency key", () => {
  it("with different bytes: one wins, the others get IDEMPOTENCY_CONFLICT (or the winner's result) and leave no blob behind", async () => {
    const key = `race-${randomUUID()}`;
    const contents = Array.from({ length: 8 }, (_, index) => text(`racer ${index} ${randomUUID()}`));
    const outcomes = await Promise.allSettled(contents.map((content) => ingestContent(t.app, projectId, content, { idempotencyKey: key })));

    const winners = new Set(outcomes.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value.asset.id] : [])));
    expect(winners.size).toBe(1);
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") expect(outcome.reason).toMatchObject({ code: "IDEMPOTENCY_CONFLICT" });
    }
    const assets = await t.app.db.asset.findMany({ where: { projectId, sha256: { in: contents.map((content) => sha256(content.bytes)) } } });
    expect(assets).toHaveLength(1);
    for (const content of contents) {
      const digest = sha256(content.bytes);
      expect(await t.app.blobs.has(digest), `blob of ${content.bytes}`).toBe(digest === assets[0]!.sha256);
    }
  });

  it("with the same bytes: every call gets the one asset and job", async () => {
    const key = `same-${randomUUID()}`;
    const content = text(`same ${randomUUID()}`);
    const results = await Promise.all(Array.from({ length: 6 }, () => ingestContent(t.app, projectId, content, { idempotencyKey: key })));
    expect(new Set(results.map((result) => result.asset.id)).size).toBe(1);
    expect(new Set(results.map((result) => result.job.id)).size).toBe(1);
    expect(await t.app.blobs.has(sha256(content.bytes))).toBe(true);
  });
});
