// `npm start`: gateway and worker in one process, for a laptop. Migrations are applied first.
import { runProcess } from "./app/bootstrap.ts";
import { createGateway } from "./gateway/gateway.ts";
import { startWorkerPool } from "./worker/worker-pool.ts";

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
