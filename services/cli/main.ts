import { Command } from "commander";
import { registerAssetsCommands } from "./commands/assets.ts";
import { registerIngestCommands } from "./commands/ingest.ts";
import { registerKeysCommands } from "./commands/keys.ts";
import { registerModelsCommands } from "./commands/models.ts";
import { registerProjectorCommands } from "./commands/projector.ts";
import { registerSearchCommands } from "./commands/search.ts";
import { registerWorkflowCommands } from "./commands/workflow.ts";

const program = new Command()
  .name("tessera")
  .description("Tessera: a self-hostable GraphQL gateway for multimodal AI")
  .showHelpAfterError();

// Each command group adds itself; adding a group is adding a line here.
registerAssetsCommands(program);
registerIngestCommands(program);
registerKeysCommands(program);
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
