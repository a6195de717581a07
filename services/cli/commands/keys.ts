import type { Command } from "commander";
import { createApiKey } from "../../core/api-keys.ts";
import { loadConfig } from "../../core/config.ts";
import { createDatabase } from "../../core/database.ts";
import { checkPostgres } from "../../core/dependency-check.ts";

export function registerKeysCommands(program: Command) {
  const keys = program.command("keys").description("manage API keys");
  keys
    .command("create")
    .description("create an API key for a project (the project is created if new); the key is printed once")
    .requiredOption("--project <name>", "project name")
    .option("--name <label>", "a label for the key")
    .action(async (options: { project: string; name?: string }) => {
      const config = loadConfig();
      await checkPostgres(config);
      const db = createDatabase(config.DATABASE_URL);
      try {
        const { key, project } = await createApiKey(db, options.project, options.name);
        console.error(`API key for project "${project.name}" (${project.id}). It is shown only now:`);
        console.log(key);
      } catch (error) {
        // P2021: a table does not exist. The database is there but was never migrated.
        if ((error as { code?: unknown }).code !== "P2021") throw error;
        const { host, pathname } = new URL(config.DATABASE_URL);
        throw new Error(
          `the database ${pathname.slice(1)} on ${host} has no Tessera tables: run the migrations first ` +
            "(npm run db:migrate; with docker compose: docker compose run --rm migrate; npm start applies them itself)",
        );
      } finally {
        await db.$disconnect();
      }
    });
}
