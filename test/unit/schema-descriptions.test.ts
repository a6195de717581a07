import { getNamedType, isObjectType, type GraphQLObjectType } from "graphql";
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
});
