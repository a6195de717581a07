/**
 * Tessera's layers, as rules: the source of truth that ARCHITECTURE.md explains.
 * `npm run lint:layers` checks them; .ci/run fails on any violation.
 *
 *   core ─▶ libraries (models, generation, assets, queue, search) ─▶ app ─▶ workflows ─▶ processes (worker, gateway + schema, cli)
 *
 * An arrow points from what is used to what uses it: each layer imports only those to its left.
 * training/ sits beside the processes: it may use the libraries, and only the CLI uses it.
 * Type-only imports count: a type edge is still a dependency of the design.
 */
const LIBRARIES = "^services/(models|generation|assets|queue|search|limits|observability|mcp-client|webhooks)/";
const PROCESSES = "^services/(worker|gateway|cli)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "sdk-stands-alone",
      severity: "error",
      comment: "packages/client (the SDK) is for any program, the browser included: it imports nothing of Tessera's code, only its own generated documents and npm packages.",
      from: { path: "^packages/" },
      to: { path: "^(services|workflows|schema|training|studio)/" },
    },
    {
      name: "no-cycles",
      severity: "error",
      comment: "A cycle means two modules are one: split what both need into a third, lower one.",
      from: {},
      to: { circular: true },
    },
    {
      name: "core-is-the-base",
      severity: "error",
      comment: "services/core (config, logger, errors, database, redis) imports nothing else of Tessera.",
      from: { path: "^services/core/" },
      to: { path: "^(services/(?!core/)|workflows/|schema/|training/)" },
    },
    {
      name: "libraries-stay-libraries",
      severity: "error",
      comment:
        "models, generation, assets, queue and search are libraries: they never reach up into the app's assembly, workflows, training, the schema or a process. Pass them narrow dependencies instead of the AppContext.",
      from: { path: LIBRARIES },
      to: { path: `^(services/app/|workflows/|schema/|training/)|${PROCESSES}` },
    },
    {
      name: "observability-uses-core-only",
      severity: "error",
      comment: "services/observability (metrics, probes, tracing) sits on core alone, so every other layer may use it.",
      from: { path: "^services/observability/" },
      to: { path: "^(services/(?!core/|observability/)|workflows/|schema/|training/)" },
    },
    {
      name: "app-assembles-libraries-only",
      severity: "error",
      comment: "services/app builds what processes share out of core and the libraries; it knows no workflow, schema or process.",
      from: { path: "^services/app/" },
      to: { path: `^(workflows/|schema/|training/)|${PROCESSES}` },
    },
    {
      name: "workflows-below-processes",
      severity: "error",
      comment: "The workflow format, engine and steps run inside processes; they never import one, nor the schema.",
      from: { path: "^workflows/" },
      to: { path: `^(schema/|training/)|${PROCESSES}` },
    },
    {
      name: "steps-reach-the-engine-through-their-context",
      severity: "error",
      comment: "A step type gets what it needs of the engine from its StepContext; the format (dsl) knows no engine either.",
      from: { path: "^workflows/(steps|dsl)/" },
      to: { path: "^workflows/engine/" },
    },
    {
      name: "worker-is-a-process",
      severity: "error",
      comment: "Only entry points start a worker; nothing else imports services/worker (processes talk through the queue and the database).",
      from: { path: "^(services|workflows|schema|training)/", pathNot: "^(services/worker/|services/main\\.ts$)" },
      to: { path: "^services/worker/" },
    },
    {
      name: "schema-and-gateway-are-the-edge",
      severity: "error",
      comment: "Only the gateway serves the schema; no other service imports schema/ or services/gateway.",
      from: { path: "^(services|workflows|training)/", pathNot: "^(services/gateway/|services/main\\.ts$)" },
      to: { path: "^(schema|services/gateway)/" },
    },
    {
      name: "training-uses-libraries-only",
      severity: "error",
      comment: "Training code may use the libraries (manifests, errors); no process, workflow or assembly.",
      from: { path: "^training/" },
      to: { path: `^(services/app/|workflows/|schema/)|${PROCESSES}` },
    },
    {
      name: "production-code-uses-production-packages",
      severity: "error",
      comment: "A devDependency is not installed in the images: production code may not import one.",
      from: { path: "^(services|workflows|schema)/" },
      to: { dependencyTypes: ["npm-dev"] },
    },
    {
      name: "imports-resolve",
      severity: "error",
      comment: "An import that does not resolve fails at run time.",
      from: {},
      // @graphql-typed-document-node/core is types only (no main), imported as types by the generated SDK.
      to: { couldNotResolve: true, pathNot: "^@graphql-typed-document-node/core$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^generated/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], mainFields: ["module", "main", "types"], extensions: [".ts", ".mjs", ".js", ".json"], conditionNames: ["import", "require", "node", "default"] },
  },
};
