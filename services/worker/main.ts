import { runProcess } from "../app/bootstrap.ts";
import { parseWorkerOptions } from "./worker-options.ts";
import { startWorkerPool } from "./worker-pool.ts";

const options = parseWorkerOptions(process.argv.slice(2));
await runProcess("worker", async (app) => {
  // Before any job: which device and models this worker serves (models still load lazily).
  app.models.configure(options.serving);
  return startWorkerPool(app, options);
});
