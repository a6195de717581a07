import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * What one project can learn about another through answers meant for itself:
 * nothing. Two projects here hold the same bytes; what either is told about
 * its own asset must read the same whether or not the other exists.
 */
const INGEST = /* GraphQL */ `
  mutation Ingest($text: String!) { ingest(input: { text: $text }) { asset { id sha256 } } }
`;
const DELETE = /* GraphQL */ `
  mutation Delete($id: ID!) { deleteAsset(id: $id) { id vectorsDeleted blobDeleted } }
`;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe("deleteAsset tells a project nothing about other projects' bytes", () => {
  it("answers the same whether another project holds the same bytes or not, and keeps the other's blob", async () => {
    const [a, b, alone] = await Promise.all([t.createProject(), t.createProject(), t.createProject()]);
    const shared = `bytes both projects hold ${randomUUID()}`;
    const inA = (await t.graphql(INGEST, { text: shared }, a.key)).data.ingest.asset;
    const inB = (await t.graphql(INGEST, { text: shared }, b.key)).data.ingest.asset;
    expect(inA.sha256).toBe(inB.sha256);
    const onlyMine = (await t.graphql(INGEST, { text: `bytes one project holds ${randomUUID()}` }, alone.key)).data.ingest.asset;

    const sharedAnswer = await t.graphql(DELETE, { id: inA.id }, a.key);
    const aloneAnswer = await t.graphql(DELETE, { id: onlyMine.id }, alone.key);
    expect(sharedAnswer.errors).toBeUndefined();
    expect(aloneAnswer.errors).toBeUndefined();
    // The answer is about the caller's asset only: its reference to the bytes is gone in both cases.
    expect(sharedAnswer.data.deleteAsset).toEqual({ id: inA.id, vectorsDeleted: 0, blobDeleted: true });
    expect(aloneAnswer.data.deleteAsset).toEqual({ id: onlyMine.id, vectorsDeleted: 0, blobDeleted: true });

    // The contract holds: A's row is gone, B still has its asset and the bytes.
    expect(await t.app.db.asset.findUnique({ where: { id: inA.id } })).toBeNull();
    expect(await t.app.blobs.has(inB.sha256)).toBe(true);
    expect(await t.app.blobs.has(onlyMine.sha256)).toBe(false);
    const stillThere = await t.graphql(`query($id: ID!) { asset(id: $id) { id } }`, { id: inB.id }, b.key);
    expect(stillThere.data.asset.id).toBe(inB.id);
  });
});
