import fs from "node:fs";
import path from "node:path";
import { printSchema } from "graphql";
import { schema } from "./index.ts";

/** The SDL checked in at schema/schema.graphql, so a schema change shows up in review. */
export const printedSchemaPath = path.join(import.meta.dirname, "schema.graphql");
export const printedSchema = () => printSchema(schema) + "\n";

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  fs.writeFileSync(printedSchemaPath, printedSchema());
  console.log(`wrote ${path.relative(process.cwd(), printedSchemaPath)}`);
}
