import { parseCommandLine } from "../app/command-line.ts";
import { parseWorkerOptions } from "./worker-options.ts";

const options = parseCommandLine(
  `
Usage: npm run worker -- [options]   (node --import tsx services/worker/main.ts)

Runs a worker: it takes jobs from the BullMQ queues in Redis until SIGTERM or SIGINT, then drains.

Options:
  --queues <names>         comma-separated queues to serve (default: every queue); \`models\` serves calls of this
                           worker's models from other processes (a GPU pool: --queues models --device cuda)
  --concurrency <n>        jobs run at once per queue (default: WORKER_CONCURRENCY)
  --device <cpu|cuda|webgpu> where this worker's models run (default: MODEL_DEVICE, else cpu)
  --models <globs>         model names this worker serves, e.g. clip-*,whisper-*
  --remote-models <globs>  models this worker calls on other workers instead of running them (REMOTE_MODELS)
  --preload <globs>        models loaded (and warmed up) right after start, \`served\` for all this worker runs;
                           /ready answers 503 until every one is loaded, and stays 503 if one fails (not retried).
                           A glob naming no model this worker runs stops the start (default: MODEL_PRELOAD, else none:
                           models load on their first job)
  -h, --help               this text
  --version                Tessera's version

Configuration comes from the environment and from .env in the working directory (see .env.example).
WORKER_HTTP_PORT, when set, serves /live, /ready and /metrics; /ready's \`models\` check lists the preloaded models
(waiting, loading, loaded or failed with its error, and the load time).
`,
  parseWorkerOptions,
);

// Imported after the arguments are read: --help answers at once, whatever the rest would load.
const [{ runProcess }, { startProbeServer }, { startWorkerPool }] = await Promise.all([
  import("../app/bootstrap.ts"),
  import("../observability/probes.ts"),
  import("./worker-pool.ts"),
]);

await runProcess("worker", async (app) => {
  // Before any job: which device and models this worker serves (models still load lazily).
  app.models.configure(options.serving);
  // MODEL_PRELOAD / --preload: a glob naming no model stops the start here; the loads go on in the background
  // while /ready answers 503 (jobs that need a model meanwhile wait for the same load).
  const preload = options.preload ?? app.config.MODEL_PRELOAD;
  if (preload.length) void app.models.startPreload(preload);
  const pool = startWorkerPool(app, options);
  // WORKER_HTTP_PORT: /live, /ready and /metrics of this worker (services/observability).
  const port = app.config.WORKER_HTTP_PORT;
  const probes = port === undefined ? undefined : await startProbeServer(port, app.config.HOST, { deps: app, metricsToken: app.config.METRICS_TOKEN });
  if (probes) app.logger.info({ host: probes.address.address, port: probes.address.port }, "worker probes listening on /live, /ready, /metrics");
  return {
    async close() {
      await pool.close();
      await probes?.close();
    },
  };
});
