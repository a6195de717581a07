// A process run through runProcess whose start() says it has started and then
// takes a while longer to return, as the worker does while its queues open.
import { runProcess } from "../../services/app/bootstrap.ts";

await runProcess("slow-start", async (app) => {
  app.logger.info("slow-start started");
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  return { close: async () => {} };
});
