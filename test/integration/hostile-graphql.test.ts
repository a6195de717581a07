import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
let key: string;
beforeAll(async () => {
  // Low limits, so that queries over them are short to write.
  t = await startTestApp({ env: { GRAPHQL_MAX_DEPTH: "3", GRAPHQL_MAX_ALIASES: "5", GRAPHQL_MAX_COST: "15" } });
  ({ key } = await t.createProject());
});
afterAll(async () => {
  await t?.close();
});

async function refusal(query: string) {
  const response = await t.graphql(query, undefined, key);
  expect(response.data).toBeUndefined();
  expect(response.errors?.length).toBeGreaterThan(0);
  return response.errors![0]!;
}

describe("hostile queries are refused with a code", () => {
  it("too deep: QUERY_TOO_COMPLEX", async () => {
    const error = await refusal("{ assets { edges { node { id } } } }");
    expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
    // Which limit, by how much, and what to do: no "Syntax Error" for a query that parses.
    expect(error.message).toMatch(/^The query is too complex: its depth \(fields nested in fields\) is 4, 1 over the limit of 3 \(GRAPHQL_MAX_DEPTH\); /);
    expect(error.extensions?.limit).toEqual({ kind: "depth", max: 3, actual: 4, over: 1, variable: "GRAPHQL_MAX_DEPTH" });
  });

  it("too many aliases: QUERY_TOO_COMPLEX", async () => {
    const aliases = Array.from({ length: 8 }, (_, i) => `a${i}: health { status }`).join(" ");
    const response = await t.graphql(`{ ${aliases} }`, undefined, key);
    expect(response.data).toBeUndefined();
    const aliasError = response.errors!.find((error) => /number of aliases is 8, 3 over the limit of 5 \(GRAPHQL_MAX_ALIASES\)/.test(error.message));
    expect(aliasError?.extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(response.errors!.every((error) => !/Syntax Error/.test(error.message))).toBe(true);
  });

  it("too costly: QUERY_TOO_COMPLEX", async () => {
    const error = await refusal("{ health { status redis postgres vectorStore checks { name state } } again: health { status redis postgres vectorStore } }");
    expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(error.message).not.toMatch(/Syntax Error/);
    const limit = error.extensions?.limit as { kind: string; max: number; actual: number; over: number; variable: string };
    expect(limit).toMatchObject({ kind: "cost", max: 15, variable: "GRAPHQL_MAX_COST" });
    expect(limit.over).toBe(limit.actual - 15);
    expect(limit.over).toBeGreaterThan(0);
    expect(error.message).toBe(
      `The query is too complex: its cost (every field selected, weighted by how deep it sits) is ${limit.actual}, ${limit.over} over the limit of 15 (GRAPHQL_MAX_COST); select fewer fields or smaller pages, or ask in several requests.`,
    );
  });

  it("too many tokens: QUERY_TOO_COMPLEX", async () => {
    const error = await refusal(`{ health { ${"status ".repeat(6000)} } }`);
    expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(error.message).toMatch(/^The query is too complex: its length in tokens is more than 5000; send a shorter document\.$/);
  });

  it("an unknown field: GRAPHQL_VALIDATION_FAILED, without suggesting real names, but saying where they are", async () => {
    const error = await refusal("{ healht { status } }");
    expect(error.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(error.message).not.toMatch(/Did you mean/);
    expect(error.message).not.toMatch(/Suggestion hidden/);
    expect(error.message).toBe(
      'Cannot query field "healht" on type "Query". (the schema\'s fields are listed in schema/schema.graphql; suggestions are shown when GRAPHQL_INTROSPECTION=1)',
    );
  });

  it("an unknown field where introspection is on: the suggestion itself", async () => {
    const open = await startTestApp({ env: { GRAPHQL_INTROSPECTION: "1" } });
    try {
      const { key: openKey } = await open.createProject();
      const response = await open.graphql("{ healht { status } }", undefined, openKey);
      expect(response.errors?.[0]?.message).toBe('Cannot query field "healht" on type "Query". Did you mean "health"?');
    } finally {
      await open.close();
    }
  });

  it("broken syntax: GRAPHQL_PARSE_FAILED", async () => {
    expect((await refusal("{ health { status ")).extensions?.code).toBe("GRAPHQL_PARSE_FAILED");
  });

  it("introspection, off unless GRAPHQL_INTROSPECTION=1: GRAPHQL_VALIDATION_FAILED", async () => {
    for (const query of ["{ __schema { queryType { name } } }", '{ __type(name: "Asset") { name } }']) {
      const error = await refusal(query);
      expect(error.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
      expect(error.message).toMatch(/introspection/i);
    }
    const open = await startTestApp({ env: { GRAPHQL_INTROSPECTION: "1" } });
    try {
      const response = await open.graphql("{ __schema { queryType { name } } }");
      expect(response.data).toEqual({ __schema: { queryType: { name: "Query" } } });
    } finally {
      await open.close();
    }
  });

  it("the server still answers ordinary queries afterwards", async () => {
    const response = await t.graphql("{ health { status } }");
    expect(response.data.health.status).toBe("OK");
  });
});
