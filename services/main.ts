// `npm start`: gateway and worker in one process, for a laptop. Migrations are applied first.
import { noArguments, parseCommandLine } from "./app/command-line.ts";

parseCommandLine(
  `
Usage: npm start   (node --import tsx services/main.ts)

Runs the gateway and a worker in one process, after applying pending database migrations.
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
