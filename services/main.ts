// `npm start`: gateway and worker in one process, for a laptop. Migrations are applied first.
import { noArguments, parseCommandLine } from "./app/command-line.ts";

parseCommandLine(
  `
Usage: npm start   (node --import tsx services/main.ts)

Runs the gateway and a worker in one process, after applying pending database migrations.
MODEL_PRELOAD loads those models right after start; /ready answers 503 until they are loaded.
Configuration comes from the environment and from .env in the working directory (see .env.example).
Separate processes: npm run gateway, npm run worker -- --help.
`,
  noArguments,
);

// Imported after the arguments are read: --help answers at once, whatever the rest would load.
const [{ runProcess }, { createGateway }, { startWorkerPool }] = await Promise.all([
  import("./app/bootstrap.ts"),
  import("./gateway/gateway.ts"),
  import("./worker/worker-pool.ts"),
]);

await runProcess(
  "tessera",
  async (app) => {
    // This process runs the models, so its /ready waits for MODEL_PRELOAD's (a lone gateway preloads nothing).
    if (app.config.MODEL_PRELOAD.length) void app.models.startPreload(app.config.MODEL_PRELOAD);
    const workers = startWorkerPool(app);
    const gateway = createGateway(app);
    await gateway.listen();
    return {
      async close() {
        await gateway.close();
        await workers.close();
      },
    };
  },
  { migrate: true },
);
