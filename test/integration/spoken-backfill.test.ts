import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { withSpokenPhones, type SpokenPhone } from "../../services/assets/asset-text.ts";
import type { Modality } from "../../services/core/database.ts";
import { backfillSpokenPhoneKeys } from "../../services/search/spoken-backfill.ts";
import { phoneticKeys, spokenCandidates } from "../../services/search/spoken-index.ts";
import { reconcileOnce } from "../../services/worker/reconciler.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * Spoken assets ingested before the phone-key index (migration 20261205083000_spoken_phone_keys) kept their phones
 * but have no keys: spoken search never matched them until a reindex. The reconciler writes their keys.
 */

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ noModels: true });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

// "quarterly budget" as the phone recogniser hears it.
const heard = "K W AO R T ER L IY B AH JH IH T".split(" ");
const phones: SpokenPhone[] = heard.map((phone, index) => ({ phone, start: index * 0.1, end: index * 0.1 + 0.1 }));

async function asset(projectId: string, modality: Modality, media: object, status: "READY" | "PROCESSING" = "READY") {
  const row = await t.app.db.asset.create({
    data: { projectId, modality, sha256: randomUUID(), mimeType: "audio/wav", byteSize: 1, source: "upload", status, media: media as never },
  });
  return row.id;
}

it("the reconciler writes the phone keys of spoken assets that have phones but no keys, and spoken search then finds them", async () => {
  const { projectId } = await t.createProject();
  const old = await asset(projectId, "AUDIO", withSpokenPhones({ durationSec: 2 }, phones) as object);
  const oldVideo = await asset(projectId, "VIDEO", withSpokenPhones({}, phones) as object);
  const silent = await asset(projectId, "AUDIO", withSpokenPhones({}, []) as object);
  const unfinished = await asset(projectId, "AUDIO", withSpokenPhones({}, phones) as object, "PROCESSING");
  const query = { modalities: ["AUDIO", "VIDEO"] as Modality[], limit: 10 };
  expect(await spokenCandidates(t.app.db, projectId, heard, query)).toEqual([]);

  const report = await reconcileOnce(t.app, { graceMs: 60_000, blobGraceMs: 3_600_000, maxRequeues: 3, projectIds: [projectId] });
  expect(report.spokenKeysBackfilled).toBe(2);
  const keysOf = async (assetId: string) => (await t.app.db.spokenPhoneKey.findMany({ where: { assetId } })).map((row) => row.key).sort();
  expect(await keysOf(old)).toEqual(phoneticKeys(heard).sort());
  expect(await keysOf(oldVideo)).toEqual(phoneticKeys(heard).sort());
  expect(await keysOf(silent)).toEqual([]);
  expect(await keysOf(unfinished)).toEqual([]);
  expect((await spokenCandidates(t.app.db, projectId, heard, query)).map((found) => found.id).sort()).toEqual([old, oldVideo].sort());

  // Done once: the next pass finds nothing to write, and another project's assets are left to its own passes.
  expect(await backfillSpokenPhoneKeys(t.app.db, { batch: 10, projectIds: [projectId] })).toBe(0);
  const other = await t.createProject();
  const elsewhere = await asset(other.projectId, "AUDIO", withSpokenPhones({}, phones) as object);
  expect(await backfillSpokenPhoneKeys(t.app.db, { batch: 10, projectIds: [projectId] })).toBe(0);
  expect(await keysOf(elsewhere)).toEqual([]);
  expect(await backfillSpokenPhoneKeys(t.app.db, { batch: 10, projectIds: [other.projectId] })).toBe(1);
}, 60_000);
