import { runProcess } from "../app/bootstrap.ts";
import { createGateway } from "./gateway.ts";

await runProcess("gateway", async (app) => {
  const gateway = createGateway(app);
  await gateway.listen();
  return gateway;
});
