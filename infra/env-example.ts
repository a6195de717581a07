/**
 * `.env.example` comes from the settings schemas (services/core/config.ts, and the webhooks' own): every variable,
 * its default and its doc comment, read from the schema's source with the TypeScript parser (so the comments need
 * no second copy).
 * `npm run env:example` writes it; test/unit/deploy-config.test.ts fails when the file and the schema drift apart.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { loadConfig } from "../services/core/config.ts";
import { webhookSettings } from "../services/webhooks/webhook-settings.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
export const ENV_EXAMPLE = path.join(ROOT, ".env.example");

/** The settings schemas, each a `const <schema> = z.object({...})` in its file, and how each applies its defaults. */
export const SCHEMAS = [
  { file: "services/core/config.ts", schema: "ConfigSchema", title: "", defaults: () => loadConfig({}) as unknown as Record<string, unknown> },
  {
    file: "services/webhooks/webhook-settings.ts",
    schema: "SettingsSchema",
    title: "Webhooks (services/webhooks/webhook-settings.ts)",
    defaults: () => webhookSettings({}) as unknown as Record<string, unknown>,
  },
] as const;

export type ConfigVariable = {
  name: string;
  /** The file of its schema. */
  source: string;
  /** The default as it would be written in a .env file; undefined when the variable is optional (unset by default). */
  defaultValue: string | undefined;
  /** The doc comment written just above it in the schema, if any (it may speak for the variables after it too). */
  comment: string | undefined;
  /** `z.enum([...])` choices. */
  choices: string[] | undefined;
};

/** Variables read outside the schema (by one library each), listed by hand in .env.example's last section. */
export const OTHER_VARIABLES: ReadonlyArray<{ name: string; comment: string }> = [
  { name: "OPENAI_API_KEY", comment: "Generation through an OpenAI-compatible provider (README, Generation): its key" },
  { name: "OPENAI_BASE_URL", comment: "and its base URL (default https://api.openai.com/v1)" },
  { name: "PROVIDERS_FILE", comment: "A YAML file of generation providers and models" },
  { name: "MODEL_DEVICE", comment: "cpu, cuda or webgpu for every model runtime of this process (a worker's --device overrides it; an unusable GPU falls back to the CPU, logged)" },
  { name: "MODEL_THREADS", comment: "onnxruntime's threads per session (default: every core)" },
  { name: "MODEL_SPINNING", comment: "1: onnxruntime's threads spin while idle (for dedicated hosts)" },
  { name: "TRITON_URL", comment: "models/clip-triton.yaml: Triton's HTTP address (compose's triton profile: http://triton:8000); unset, that manifest is not served" },
  { name: "HF_ENDPOINT", comment: "`tessera models pull`: the Hugging Face hub's URL" },
  { name: "HF_TOKEN", comment: "and a token for it" },
  { name: "OTEL_SERVICE_NAME", comment: "The service name in traces (default tessera-<process>)" },
  { name: "TESSERA_URL", comment: "The CLI: the gateway's address (or --url; default http://127.0.0.1:4000/graphql)" },
  { name: "TESSERA_API_KEY", comment: "The CLI: its API key (or --api-key)" },
];

/**
 * Notes for variables the schema leaves without a comment of their own and that do not continue the group above
 * them (GRAPHQL_MAX_ALIASES goes on from "GraphQL limits against hostile queries." and needs none).
 */
const BARE_NOTES: Record<string, string> = {
  NODE_ENV: "production in the images",
  HOST: "The address the gateway (and a worker's probe port) listens on: 0.0.0.0 in a container",
  PORT: "The gateway's port",
  DATABASE_URL: "PostgreSQL",
  REDIS_URL: "Redis: BullMQ queues, events, rate limits (append-only file on, no eviction; README, Reliability)",
  WEAVIATE_GRPC_PORT: "Weaviate's gRPC port on WEAVIATE_URL's host, and its API key if it asks for one",
  WEAVIATE_VECTOR_INDEX:
    "The index each space's vectors get when Weaviate's collection or a new space is created: `flat` searches\nexactly (recall 1, cost linear in a project's vectors), `hnsw` approximately (sub-linear, recall below 1).",
  DATA_DIR: "Blobs (and the embedded vector store) live here: /data in the images",
  MODELS_DIR: "Model manifests and weights",
  LOG_LEVEL: "pino's level",
  MAX_UPLOAD_BYTES: "Largest upload",
  WORKER_CONCURRENCY: "Jobs one worker process runs at once, per queue",
};

function commentOf(node: ts.Node, source: ts.SourceFile): string | undefined {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? [];
  const last = ranges.at(-1);
  if (!last) return undefined;
  const text = source.text.slice(last.pos, last.end);
  const lines = text
    .replace(/^\/\*\*?/, "")
    .replace(/\*\/$/, "")
    .replace(/^\/\/\s?/, "")
    .split("\n")
    .map((line) => line.replace(/^\s*\*\s?/, "").trimEnd())
    .filter((line, index, all) => line !== "" || (index > 0 && index < all.length - 1));
  return lines.join("\n").trim() || undefined;
}

/** The calls of a zod chain, innermost first: `z.coerce.number().int().default(4)` → number, int, default. */
function chainCalls(expression: ts.Expression): ts.CallExpression[] {
  const calls: ts.CallExpression[] = [];
  let node: ts.Expression = expression;
  while (ts.isCallExpression(node) || ts.isPropertyAccessExpression(node)) {
    if (ts.isCallExpression(node)) {
      calls.unshift(node);
      node = node.expression;
    } else node = node.expression;
  }
  return calls;
}

const calledName = (call: ts.CallExpression) => (ts.isPropertyAccessExpression(call.expression) ? call.expression.name.text : "");

/** Every variable of every settings schema, in the schemas' order. */
export function configVariables(): ConfigVariable[] {
  return SCHEMAS.flatMap(({ file, schema, defaults }) => schemaVariables(file, schema, defaults()));
}

function schemaVariables(file: string, schemaName: string, defaults: Record<string, unknown>): ConfigVariable[] {
  const source = ts.createSourceFile(file, readFileSync(path.join(ROOT, file), "utf8"), ts.ScriptTarget.ES2023, true);
  let shape: ts.ObjectLiteralExpression | undefined;
  source.forEachChild(function visit(node) {
    if (ts.isVariableDeclaration(node) && node.name.getText(source) === schemaName && node.initializer && ts.isCallExpression(node.initializer)) {
      const [argument] = node.initializer.arguments;
      if (argument && ts.isObjectLiteralExpression(argument)) shape = argument;
    }
    node.forEachChild(visit);
  });
  if (!shape) throw new Error(`no ${schemaName} = z.object({...}) in ${file}`);
  return shape.properties.filter(ts.isPropertyAssignment).map((property) => {
    const name = property.name.getText(source);
    const calls = chainCalls(property.initializer);
    const defaultCall = calls.find((call) => calledName(call) === "default");
    const enumCall = calls.find((call) => calledName(call) === "enum");
    let defaultValue: string | undefined;
    if (defaultCall) {
      const [argument] = defaultCall.arguments;
      // A literal is written as it is (before any transform); an expression (10 * 1024 ** 3) as its value.
      defaultValue = argument && ts.isStringLiteral(argument) ? argument.text : String(defaults[name]);
    }
    const [choicesNode] = enumCall?.arguments ?? [];
    const choices = choicesNode && ts.isArrayLiteralExpression(choicesNode) ? choicesNode.elements.filter(ts.isStringLiteral).map((element) => element.text) : undefined;
    return { name, source: file, defaultValue, comment: commentOf(property, source) ?? BARE_NOTES[name], choices };
  });
}

const hash = (text: string) =>
  text
    .split("\n")
    .map((line) => `# ${line}`.trimEnd())
    .join("\n");

/** The text of `.env.example`. */
export function renderEnvExample(variables = configVariables()): string {
  const blocks = [
    hash(
      [
        "Tessera's settings, with their defaults. Copy to .env and change what you need: every entry point",
        "(npm start, the gateway, the worker, the CLI) reads .env from the directory it starts in, and a variable",
        "set in the real environment wins over .env. A line left commented out is unset.",
        "Generated from the settings schemas (services/core/config.ts first) by `npm run env:example`; a test fails",
        "when they drift apart.",
      ].join("\n"),
    ),
  ];
  let source = SCHEMAS[0].file as string;
  for (const variable of variables) {
    if (variable.source !== source) {
      source = variable.source;
      blocks.push(hash(SCHEMAS.find((schema) => schema.file === source)?.title || source));
    }
    const lines: string[] = [];
    if (variable.comment) lines.push(hash(variable.comment));
    if (variable.choices) lines.push(`# one of: ${variable.choices.join(", ")}`);
    lines.push(variable.defaultValue === undefined ? `# ${variable.name}=` : `${variable.name}=${variable.defaultValue}`);
    // No comment of its own: it goes on from the group above it.
    if (!variable.comment && blocks.length > 1) blocks[blocks.length - 1] += `\n${lines.join("\n")}`;
    else blocks.push(lines.join("\n"));
  }
  blocks.push(hash("Read outside the schema, by the part named."));
  for (const variable of OTHER_VARIABLES) blocks.push(`${hash(variable.comment)}\n# ${variable.name}=`);
  return `${blocks.join("\n\n")}\n`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  writeFileSync(ENV_EXAMPLE, renderEnvExample());
  console.log(`wrote ${path.relative(process.cwd(), ENV_EXAMPLE)}`);
}
