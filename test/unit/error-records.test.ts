import { describe, expect, it } from "vitest";
import { toErrorRecord } from "../../services/core/errors.ts";
import { ExpressionError } from "../../workflows/dsl/expression-pool.ts";

describe("error records", () => {
  it("an expression's own error is the author's to read: BAD_USER_INPUT with the expression and why, not a masked INTERNAL", () => {
    const record = toErrorRecord(new ExpressionError("$undefinedFunction()", "Attempted to invoke a non-function"), "step x of run y");
    expect(record.code).toBe("BAD_USER_INPUT");
    expect(record.message).toBe("${{ $undefinedFunction() }}: Attempted to invoke a non-function");
  });

  it("anything else that is not a TesseraError is INTERNAL, naming where the logs have it", () => {
    const record = toErrorRecord(new TypeError("Cannot read properties of undefined (reading 'vectors') at /srv/app/x.ts:3"), "job 42");
    expect(record).toEqual({ code: "INTERNAL", message: "an internal error stopped this; the server's logs have the details under job 42", details: { reference: "job 42" } });
  });
});
