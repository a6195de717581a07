import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ingestStages } from "../../services/worker/ingest/ingest-stages.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * deleteAsset can run while the asset's ingest job works. Whenever the row
 * goes, the job must end NOT_FOUND and leave no vectors behind: before the
 * index stage (its embedding record's foreign key fails, nothing is written)
 * and after it (the final READY update finds no row and takes the vectors back).
 * A test stage deletes the row at those two points, as deleteAsset's last step does.
 */
const BEFORE_INDEX = "delete me before the index stage";
const AFTER_INDEX = "delete me after the index stage";
let t: TestApp;
let key: string;
let projectId: string;

const deleteRowWhen = (marker: string) => ({
  name: `test-delete-${marker}`,
  async run(asset: { id: string }, state: { text?: { content: string } }) {
    if (state.text?.content.startsWith(marker)) await t.app.db.asset.delete({ where: { id: asset.id } });
  },
});
ingestStages.splice(ingestStages.findIndex((stage) => stage.name === "index"), 0, deleteRowWhen(BEFORE_INDEX));
ingestStages.push(deleteRowWhen(AFTER_INDEX));

beforeAll(async () => {
  t = await startTestApp({ worker: true });
  ({ key, projectId } = await t.createProject());
});
afterAll(async () => {
  await t?.app.vectorStore.deleteProject(projectId).catch(() => {});
  await t?.close();
});

async function ingestAndFinish(text: string) {
  const { data, errors } = await t.graphql(`mutation ($text: String!) { ingest(input: { text: $text }) { asset { id } job { id } } }`, { text }, key);
  expect(errors).toBeUndefined();
  const job = await eventually(async () => {
    const row = await t.app.db.job.findUnique({ where: { id: data.ingest.job.id } });
    return row && ["SUCCEEDED", "FAILED"].includes(row.status) ? row : null;
  }, 90_000);
  return { assetId: data.ingest.asset.id as string, job };
}

describe("an asset deleted while its ingest job runs", () => {
  it.each([BEFORE_INDEX, AFTER_INDEX])("%s: the job fails NOT_FOUND and no vector is left", async (marker) => {
    const { assetId, job } = await ingestAndFinish(`${marker}: a few words to embed`);
    expect(job.status).toBe("FAILED");
    expect(job.error).toMatchObject({ code: "NOT_FOUND" });
    expect(await t.app.db.asset.findUnique({ where: { id: assetId } })).toBeNull();
    expect(await t.app.vectorStore.count(projectId, { assetId })).toBe(0);
  });

  it("an asset left alone is READY with its vectors", async () => {
    const { assetId, job } = await ingestAndFinish("an ordinary text that nobody deletes");
    expect(job.status).toBe("SUCCEEDED");
    expect(await t.app.vectorStore.count(projectId, { assetId })).toBeGreaterThan(0);
  });
});
