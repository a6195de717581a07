import { Command } from "commander";
import { loadDotEnv, tesseraVersion } from "../app/command-line.ts";
import { registerAssetsCommands } from "./commands/assets.ts";
import { registerIngestCommands } from "./commands/ingest.ts";
import { registerJobsCommands } from "./commands/jobs.ts";
import { registerKeysCommands } from "./commands/keys.ts";
import { registerMcpCommands } from "./commands/mcp.ts";
import { registerModelsCommands } from "./commands/models.ts";
import { registerProjectorCommands } from "./commands/projector.ts";
import { registerSearchCommands } from "./commands/search.ts";
import { registerWorkflowCommands } from "./commands/workflow.ts";

// .env in the working directory fills in what the environment leaves unset (TESSERA_URL, TESSERA_API_KEY, DATABASE_URL).
loadDotEnv();

const program = new Command()
  .name("tessera")
  .description("Tessera: a self-hostable GraphQL gateway for multimodal AI")
  .version(tesseraVersion(), "-V, --version", "print Tessera's version")
  .option("--url <url>", "the gateway's address or its /graphql URL (env TESSERA_URL; default http://127.0.0.1:4000/graphql)")
  .option("--api-key <key>", "the API key to call it with (env TESSERA_API_KEY, which other users of this machine cannot see in ps)")
  .showHelpAfterError();

// The flags stand in for the variables, which the gateway client reads; a flag wins over the environment and .env.
program.hook("preAction", () => {
  const { url, apiKey } = program.opts<{ url?: string; apiKey?: string }>();
  if (url) process.env.TESSERA_URL = url;
  if (apiKey) process.env.TESSERA_API_KEY = apiKey;
});

// Each command group adds itself; adding a group is adding a line here.
registerAssetsCommands(program);
registerIngestCommands(program);
registerJobsCommands(program);
registerKeysCommands(program);
registerMcpCommands(program);
registerModelsCommands(program);
registerProjectorCommands(program);
registerSearchCommands(program);
registerWorkflowCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
