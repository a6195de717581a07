import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { validateWorkflow } from "../../workflows/dsl/validate-workflow.ts";

const folder = path.resolve(import.meta.dirname, "..", "..", "workflows", "examples");
const files = fs.readdirSync(folder).filter((file) => /\.(ya?ml|json)$/.test(file));

describe("workflows/examples", () => {
  it("has the examples the docs promise", () => {
    expect(files).toEqual(expect.arrayContaining(["caption-and-index.yaml", "video-digest.yaml", "audio-notes.yaml", "cross-modal-qa.yaml"]));
  });

  for (const file of files) {
    it(`${file} is a valid workflow whose slug is its file name`, () => {
      const { definition, problems } = validateWorkflow(fs.readFileSync(path.join(folder, file), "utf8"));
      expect(problems.map((problem) => `${file}:${problem.line}:${problem.column} ${problem.message}`)).toEqual([]);
      expect(definition?.slug).toBe(file.replace(/\.(ya?ml|json)$/, ""));
    });
  }
});
