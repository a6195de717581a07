import { execute, parse, subscribe, type ExecutionResult, type GraphQLObjectType } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schema } from "../../schema/index.ts";
import { TesseraError } from "../../services/core/errors.ts";
import type { Project } from "../../services/core/database.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/**
 * The `project` scope on the schema itself, with the gateway's early gate
 * (use-project-auth) out of the way: operations are executed on the schema
 * directly, as a resolver would see them if the gate were ever bypassed.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const MESSAGE = "a valid API key is required: send `Authorization: Bearer <key>`";

async function run(source: string, project: Project | null) {
  return (await execute({ schema, document: parse(source), contextValue: { app: t.app, project } })) as ExecutionResult;
}

function expectUnauthenticated(result: ExecutionResult, field: string) {
  expect(result.errors, field).toHaveLength(1);
  const [error] = result.errors!;
  expect(error!.path).toEqual([field]);
  expect(error!.message).toBe(MESSAGE);
  expect(error!.originalError).toBeInstanceOf(TesseraError);
  expect((error!.originalError as TesseraError).code).toBe("UNAUTHENTICATED");
}

describe("the project scope", () => {
  it("refuses every kind of root field without a project, with UNAUTHENTICATED and the usual message", async () => {
    const operations: Array<[string, string]> = [
      ["workflows", `{ workflows { slug } }`],
      ["runs", `{ runs { id } }`],
      ["asset", `{ asset(id: "x") { id } }`],
      ["assets", `{ assets { edges { node { id } } } }`],
      ["job", `{ job(id: "x") { id } }`],
      ["models", `{ models { name } }`],
      ["search", `{ search(input: { text: "x" }) { hits { score } } }`],
      ["ingest", `mutation { ingest(input: { text: "refused" }) { asset { id } } }`],
      ["deleteAsset", `mutation { deleteAsset(id: "x") { id } }`],
      ["generate", `mutation { generate(input: { task: TEXT, prompt: "x" }) { id } }`],
      ["publishWorkflow", `mutation { publishWorkflow(definition: "x") { id } }`],
      ["runWorkflow", `mutation { runWorkflow(slug: "x") { id } }`],
    ];
    const assetsBefore = await t.app.db.asset.count();
    for (const [field, source] of operations) expectUnauthenticated(await run(source, null), field);
    // Refused before the resolver: the mutation wrote nothing.
    expect(await t.app.db.asset.count()).toBe(assetsBefore);
  });

  it("refuses a subscription when it starts", async () => {
    const result = (await subscribe({
      schema,
      document: parse(`subscription { jobEvents(id: "x") { status } }`),
      contextValue: { app: t.app, project: null },
    })) as ExecutionResult;
    expectUnauthenticated(result, "jobEvents");
  });

  it("leaves health open, and lets a project through", async () => {
    const health = await run(`{ health { postgres } }`, null);
    expect(health.errors).toBeUndefined();
    expect(health.data).toEqual({ health: { postgres: "OK" } });

    const { projectId } = await t.createProject();
    const project = await t.app.db.project.findUniqueOrThrow({ where: { id: projectId } });
    const listed = await run(`{ workflows { slug } runs { id } }`, project);
    expect(listed.errors).toBeUndefined();
    expect(listed.data).toEqual({ workflows: [], runs: [] });
  });

  it("is required of every root field but health (deny by default)", () => {
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()] as GraphQLObjectType[];
    const open: string[] = [];
    for (const root of roots) {
      // The project always; with the key scope of the operation's kind (read, write), issue #19.
      const scope = root === schema.getMutationType() ? "write" : "read";
      expect((root.extensions.pothosOptions as { authScopes?: unknown }).authScopes, root.name).toEqual({ $all: { project: true, [scope]: true } });
      for (const field of Object.values(root.getFields())) {
        if ((field.extensions.pothosOptions as { skipTypeScopes?: boolean }).skipTypeScopes) open.push(field.name);
      }
    }
    expect(open).toEqual(["health"]);
  });
});
