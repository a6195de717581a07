import fs from "node:fs";
import path from "node:path";
import { getNamedType, isObjectType, parse, validate, type GraphQLObjectType } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../schema/index.ts";
import { undescribed } from "../support/schema-docs.ts";

describe("the schema's documentation", () => {
  it("describes every type, field, argument, input field and enum value", () => {
    const missing = undescribed(schema);
    expect(missing, `${missing.length} without a description:\n${missing.join("\n")}`).toEqual([]);
  });

  it("types times as DateTime and states as enums where a string stood for them", () => {
    const typeOf = (typeName: string, field: string) => {
      const type = schema.getType(typeName) as GraphQLObjectType;
      expect(isObjectType(type)).toBe(true);
      return getNamedType(type.getFields()[field]!.type).name;
    };
    expect(typeOf("RunEvent", "at")).toBe("DateTime");
    expect(typeOf("JobEvent", "at")).toBe("DateTime");
    expect(typeOf("RunEvent", "runStatus")).toBe("RunStatus");
    expect(typeOf("RunEvent", "stepStatus")).toBe("StepStatus");
    expect(typeOf("Job", "kind")).toBe("JobKind");
    // The text form stays for old clients, marked deprecated.
    expect((schema.getType("RunEvent") as GraphQLObjectType).getFields().status!.deprecationReason).toMatch(/runStatus/);
  });

  it("validates the README's examples of run(id) and keys", () => {
    const readme = fs.readFileSync(path.join(import.meta.dirname, "../../README.md"), "utf8").replace(/\s+/g, " ");
    const run = "run(id) { id status output error { code message } steps { id stepId status output error { code message } attempts } }";
    const keys = "{ keys(first: 20) { totalCount edges { node { id name prefix scopes expiresAt lastUsedAt current } } } }";
    for (const example of [run, keys]) expect(readme).toContain(example);
    const documents = [`query ($id: ID!) { ${run.replace("run(id)", "run(id: $id)")} }`, keys];
    for (const source of documents) expect(validate(schema, parse(source)).map((error) => error.message), source).toEqual([]);
  });
});
