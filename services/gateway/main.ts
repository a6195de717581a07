import { noArguments, parseCommandLine } from "../app/command-line.ts";

parseCommandLine(
  `
Usage: npm run gateway   (node --import tsx services/gateway/main.ts)

Runs the GraphQL gateway on HOST:PORT (default 127.0.0.1:4000). It does not apply migrations: run
npm run db:migrate first (npm start does both). Configuration comes from the environment and from .env in
the working directory (see .env.example).
`,
  noArguments,
);

// Imported after the arguments are read: --help answers at once, whatever the rest would load.
const [{ runProcess }, { createGateway }] = await Promise.all([import("../app/bootstrap.ts"), import("./gateway.ts")]);

await runProcess("gateway", async (app) => {
  const gateway = createGateway(app);
  await gateway.listen();
  return gateway;
});
