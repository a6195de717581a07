import { runProcess } from "../core/bootstrap.ts";
import { parseWorkerOptions } from "./worker-options.ts";
import { startWorkerPool } from "./worker-pool.ts";

const options = parseWorkerOptions(process.argv.slice(2));
await runProcess("worker", async (app) => startWorkerPool(app, options));
