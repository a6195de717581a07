import { describe, expect, it } from "vitest";
import { evaluateString, evaluateValue, referencesOf } from "../../workflows/dsl/expression.ts";

const scope = {
  inputs: { name: "Ada", n: 3, tags: ["a", "b"] },
  steps: { read: { output: { text: "hello", items: [{ id: 1 }, { id: 2 }] }, status: "SUCCEEDED" } },
};

describe("workflow expressions", () => {
  it("gives a whole-string expression's value with its type", async () => {
    expect(await evaluateString("${{ inputs.n * 2 }}", scope)).toBe(6);
    expect(await evaluateString("${{ inputs.tags }}", scope)).toEqual(["a", "b"]);
    expect(await evaluateString("${{ steps.read.output.items.id }}", scope)).toEqual([1, 2]);
    expect(await evaluateString("${{ inputs.missing }}", scope)).toBeNull();
  });

  it("interpolates expressions inside text", async () => {
    expect(await evaluateString("Hi ${{ inputs.name }}, ${{ inputs.n }} ${{ inputs.tags }}", scope)).toBe('Hi Ada, 3 ["a","b"]');
  });

  it("evaluates expressions anywhere inside a value, keeping its shape", async () => {
    expect(await evaluateValue({ a: ["${{ inputs.name }}", 1], b: { c: "${{ $uppercase(steps.read.output.text) }}" } }, scope)).toEqual({
      a: ["Ada", 1],
      b: { c: "HELLO" },
    });
  });

  it("has no way out of the sandbox: no process, no globals, no constructors", async () => {
    expect(await evaluateString("${{ process }}", scope)).toBeNull();
    expect(await evaluateString("${{ $$.constructor }}", scope)).toBeNull();
    await expect(evaluateString("${{ $eval('process.exit(1)') }}", scope)).resolves.toBeNull();
    await expect(evaluateString("${{ require('fs') }}", scope)).rejects.toThrow();
  });

  it("lists the scope paths an expression reads, not the names inside predicates", () => {
    expect(referencesOf("steps.read.output.text & inputs.name")).toEqual([
      ["steps", "read", "output", "text"],
      ["inputs", "name"],
    ]);
    expect(referencesOf("inputs.list[price > 5].name")).toEqual([["inputs", "list"]]);
    expect(referencesOf("$map(steps.a.output.items, function($x) { $x.id })")).toEqual([["steps", "a", "output", "items"]]);
  });
});
