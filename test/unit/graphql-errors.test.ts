import { GraphQLError, parse } from "graphql";
import { describe, expect, it } from "vitest";
import { ErrorCode, TesseraError, toErrorRecord } from "../../services/core/errors.ts";
import { isClientError, maskError } from "../../services/gateway/graphql-errors.ts";

const MESSAGE = "Unexpected error.";
const document = parse("{ asset(id: 1) { id } }");
const field = (document.definitions[0] as any).selectionSet.selections[0];

/** What graphql-js makes of an error a resolver throws: a GraphQLError at the field, the thrown error as originalError. */
function located(thrown: Error) {
  return new GraphQLError(thrown.message, { nodes: [field], path: ["asset"], originalError: thrown });
}

describe("TesseraError", () => {
  it("is a plain error, not a GraphQL one: the transport decides how it looks", () => {
    const error = new TesseraError(ErrorCode.NOT_FOUND, "no such asset", { id: "1" });
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(GraphQLError);
    expect(error).not.toHaveProperty("extensions");
    expect(toErrorRecord(error)).toEqual({ code: "NOT_FOUND", message: "no such asset", details: { id: "1" } });
  });
});

describe("maskError at the gateway's edge", () => {
  it("turns a TesseraError thrown in a resolver into a GraphQL error with its code, details, path and locations", () => {
    const masked = maskError(located(new TesseraError(ErrorCode.INVALID_WORKFLOW, "a cycle", { problems: [{ line: 3 }] })), MESSAGE, false);
    expect(masked).toBeInstanceOf(GraphQLError);
    expect((masked as GraphQLError).toJSON()).toEqual({
      message: "a cycle",
      path: ["asset"],
      locations: [{ line: 1, column: 3 }],
      extensions: { code: "INVALID_WORKFLOW", details: { problems: [{ line: 3 }] } },
    });
  });

  it("finds a TesseraError deeper in the originalError chain, and one thrown bare (a plugin, the upload parser)", () => {
    const deep = new GraphQLError("outer", { originalError: located(new TesseraError(ErrorCode.NOT_FOUND, "gone")) });
    expect((maskError(deep, MESSAGE, false) as GraphQLError).toJSON()).toMatchObject({ message: "gone", extensions: { code: "NOT_FOUND" } });
    const bare = maskError(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, "too big"), MESSAGE, false) as GraphQLError;
    expect(bare.toJSON()).toEqual({ message: "too big", extensions: { code: "PAYLOAD_TOO_LARGE" } });
    expect(isClientError(deep)).toBe(true);
  });

  it("masks anything else, without its message or stack", () => {
    for (const error of [located(new Error("password=hunter2")), new Error("password=hunter2"), "password=hunter2"]) {
      const masked = maskError(error, MESSAGE, false) as GraphQLError;
      expect(masked.message).toBe(MESSAGE);
      expect(JSON.stringify(masked.toJSON())).not.toMatch(/hunter2|\.ts:\d+/);
      expect(isClientError(error)).toBe(false);
    }
  });

  it("lets GraphQL's own errors (validation, parsing, bad variables) through as they are", () => {
    const validation = new GraphQLError('Cannot query field "healht" on type "Query".', { extensions: { code: "GRAPHQL_VALIDATION_FAILED" } });
    expect(maskError(validation, MESSAGE, false)).toBe(validation);
  });
});
