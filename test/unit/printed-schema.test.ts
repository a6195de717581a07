import fs from "node:fs";
import { expect, it } from "vitest";
import { printedSchema, printedSchemaPath } from "../../schema/print.ts";

it("schema/schema.graphql matches the code (run `npm run schema:print`)", () => {
  expect(fs.readFileSync(printedSchemaPath, "utf8")).toBe(printedSchema());
});
