import { runProcess } from "../app/bootstrap.ts";
import { startProbeServer } from "../observability/probes.ts";
import { parseWorkerOptions } from "./worker-options.ts";
import { startWorkerPool } from "./worker-pool.ts";

const options = parseWorkerOptions(process.argv.slice(2));
await runProcess("worker", async (app) => {
  // Before any job: which device and models this worker serves (models still load lazily).
  app.models.configure(options.serving);
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
