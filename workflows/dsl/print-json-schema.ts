// `npx tsx workflows/dsl/print-json-schema.ts`: regenerates workflows/schema.json (a test fails when it is stale).
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { workflowJsonSchemaText } from "./json-schema.ts";

const target = fileURLToPath(new URL("../schema.json", import.meta.url));
fs.writeFileSync(target, workflowJsonSchemaText());
console.log(`wrote ${target}`);
