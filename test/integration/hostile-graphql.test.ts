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
    expect(error.message).toMatch(/depth limit of 3/);
  });

  it("too many aliases: QUERY_TOO_COMPLEX", async () => {
    const aliases = Array.from({ length: 8 }, (_, i) => `a${i}: health { status }`).join(" ");
    const response = await t.graphql(`{ ${aliases} }`, undefined, key);
    expect(response.data).toBeUndefined();
    const aliasError = response.errors!.find((error) => /Aliases limit of 5/.test(error.message));
    expect(aliasError?.extensions?.code).toBe("QUERY_TOO_COMPLEX");
  });

  it("too costly: QUERY_TOO_COMPLEX", async () => {
    const error = await refusal("{ health { status redis postgres vectorStore checks { name state } } again: health { status redis postgres vectorStore } }");
    expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(error.message).toMatch(/Cost limit of 15/);
  });

  it("too many tokens: QUERY_TOO_COMPLEX", async () => {
    const error = await refusal(`{ health { ${"status ".repeat(6000)} } }`);
    expect(error.extensions?.code).toBe("QUERY_TOO_COMPLEX");
  });

  it("an unknown field: GRAPHQL_VALIDATION_FAILED, without suggesting real names", async () => {
    const error = await refusal("{ healht { status } }");
    expect(error.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(error.message).not.toMatch(/Did you mean/);
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
