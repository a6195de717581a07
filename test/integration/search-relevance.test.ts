import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corpusItems, judgedQueries, relevanceFigures, type Upload } from "../../bench/fixtures/relevance/corpus.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * The relevance bench's regression guard (issue #21), on a small subset of its corpus: the issue's four
 * cases must rank right with the DEFAULT settings (no spaceWeights, no hybrid), through the real ingest
 * path (worker, OCR, the bundled models) and the embedded store a fresh install uses. Under plain reciprocal
 * rank fusion "kilo" put the KILO sign third, behind two other signs. The whole bench: `npm run bench -- relevance`.
 */

const SUBSET = [
  "recipe-tomato-soup", "receipt", "lighthouse-notes", "travel-itinerary", "birdwatching", "poem-sea",
  "sign-gate-13", "sign-gate-5", "sign-kilo", "sign-platform-9", "sign-harbour", "sign-exit",
  "emoji-rocket", "emoji-crab",
];
const INGEST = /* GraphQL */ `mutation Ingest($input: IngestInput!) { ingest(input: $input) { asset { id } job { id } } }`;
const SEARCH = /* GraphQL */ `
  query Search($input: SearchInput!) { search(input: $input) { hits { score asset { id } explain { vectorScore spaces { space rank score normalised derived } keyword { rank score normalised } } } } }
`;

describe("default ranking on the relevance corpus's issue cases (worker + embedded store + real models)", () => {
  let t: TestApp;
  let project: { key: string; projectId: string };
  const assetIds = new Map<string, string>();

  async function ingest(input: Record<string, unknown>, file?: Upload): Promise<{ assetId: string; jobId: string }> {
    let result: any;
    if (file) {
      const form = new FormData();
      form.set("operations", JSON.stringify({ query: INGEST, variables: { input: { ...input, file: null } } }));
      form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
      form.set("0", new Blob([Buffer.from(file.bytes)], { type: file.mimeType }), file.filename);
      const response = await fetch(t.url, { method: "POST", body: form, headers: { authorization: `Bearer ${project.key}`, "graphql-require-preflight": "1" } });
      result = await response.json();
    } else {
      result = await t.graphql(INGEST, { input }, project.key);
    }
    expect(result.errors).toBeUndefined();
    return { assetId: result.data.ingest.asset.id, jobId: result.data.ingest.job.id };
  }

  beforeAll(async () => {
    // The embedded store, as a fresh install has it (the issue's setting).
    t = await startTestApp({ worker: true });
    project = await t.createProject();
    const items = corpusItems().filter((item) => SUBSET.includes(item.id));
    expect(items.map((item) => item.id).sort()).toEqual([...SUBSET].sort());
    const jobs: string[] = [];
    for (const item of items) {
      const made = await item.make();
      const { assetId, jobId } = "text" in made ? await ingest({ text: made.text }) : await ingest({}, made.file);
      assetIds.set(assetId, item.id);
      jobs.push(jobId);
    }
    await eventually(async () => {
      const pending = await t.app.db.job.count({ where: { id: { in: jobs }, status: { notIn: ["SUCCEEDED", "FAILED"] } } });
      return pending === 0 ? true : null;
    }, 240_000);
    expect(await t.app.db.job.count({ where: { id: { in: jobs }, status: "FAILED" } })).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await t.app.vectorStore.deleteProject(project.projectId);
    await t.close();
  });

  it("puts the right asset first for the issue's four queries with the default settings", async () => {
    const cases = judgedQueries().filter((query) => query.issue);
    expect(cases.map((query) => query.id).sort()).toEqual(["issue-gate-5", "issue-kilo", "issue-lighthouse", "issue-tomato-soup"]);
    const outcomes = [];
    for (const query of cases) {
      if (!("text" in query.query)) throw new Error("the issue's cases are text queries");
      const result = await t.graphql(SEARCH, { input: { text: query.query.text } }, project.key);
      expect(result.errors).toBeUndefined();
      const ranked = result.data.search.hits.map((hit: any) => assetIds.get(hit.asset.id) ?? hit.asset.id);
      outcomes.push({ query, ranked });
      if (process.env.DEBUG_RELEVANCE) console.log(query.id, JSON.stringify(result.data.search.hits.slice(0, 3).map((hit: any) => [assetIds.get(hit.asset.id), hit.score, hit.explain])));
    }
    const firsts = Object.fromEntries(outcomes.map(({ query, ranked }) => [query.id, ranked[0]]));
    expect(firsts).toEqual({
      "issue-tomato-soup": "recipe-tomato-soup",
      "issue-lighthouse": "lighthouse-notes",
      "issue-kilo": "sign-kilo",
      "issue-gate-5": "sign-gate-5",
    });
    // The receipt, which also reads TOMATO SOUP, stays near the top.
    expect(outcomes.find(({ query }) => query.id === "issue-tomato-soup")!.ranked.slice(0, 3)).toContain("receipt");
    expect(relevanceFigures(outcomes).success1).toBe(1);
  });
});
