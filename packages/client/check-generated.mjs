/**
 * `npm run sdk:check`: generates the SDK into a temporary folder and compares
 * it with packages/client/generated; exits 1, naming the files, when the
 * committed code is stale (an operation or schema/schema.graphql changed
 * without `npm run sdk:generate`).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const committed = path.resolve("packages/client/generated");
const fresh = fs.mkdtempSync(path.join(os.tmpdir(), "tessera-sdk-"));
try {
  execFileSync("npx", ["graphql-codegen", "--silent", "--config", "packages/client/codegen.ts"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, SDK_CODEGEN_OUT: `${fresh}/` },
  });
  const names = new Set([...fs.readdirSync(committed), ...fs.readdirSync(fresh)]);
  const stale = [...names].filter((name) => {
    const read = (dir) => (fs.existsSync(path.join(dir, name)) ? fs.readFileSync(path.join(dir, name), "utf8") : null);
    return read(committed) !== read(fresh);
  });
  if (stale.length) {
    console.error(`the SDK is stale: ${stale.map((name) => `packages/client/generated/${name}`).join(", ")} differ from what codegen writes; run npm run sdk:generate and commit`);
    process.exitCode = 1;
  } else console.log("the SDK matches schema/schema.graphql and packages/client/operations");
} finally {
  fs.rmSync(fresh, { recursive: true, force: true });
}
