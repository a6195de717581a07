import type { Command } from "commander";
import { KeysDocument, type KeysQuery, RevokeKeyDocument } from "../../../packages/client/index.ts";
import { createApiKey } from "../../core/api-keys.ts";
import { loadConfig } from "../../core/config.ts";
import { createDatabase } from "../../core/database.ts";
import { checkPostgres } from "../../core/dependency-check.ts";
import { gateway } from "../gateway-client.ts";

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

  keys
    .command("list")
    .description("the project's API keys through the gateway (needs the admin scope): id, prefix, name, scopes, last used, expiry; * marks the key in use")
    .option("--revoked", "revoked keys too")
    .option("--json", "one JSON object per key")
    .action(async (options: { revoked?: boolean; json?: boolean }) => {
      const nodes: KeysQuery["keys"]["edges"][number]["node"][] = [];
      let after: string | null = null;
      do {
        const page: KeysQuery = await gateway().request(KeysDocument, { first: 100, after, includeRevoked: Boolean(options.revoked) });
        nodes.push(...page.keys.edges.map((edge) => edge.node));
        after = page.keys.pageInfo.hasNextPage ? page.keys.pageInfo.endCursor : null;
      } while (after);
      for (const key of nodes) {
        console.log(
          options.json
            ? JSON.stringify(key)
            : [
                `${key.current ? "*" : " "}${key.id}`,
                key.prefix,
                key.name ?? "",
                key.scopes.join(","),
                key.lastUsedAt ?? "never used",
                key.revokedAt ? `revoked ${key.revokedAt}` : key.expiresAt ? `expires ${key.expiresAt}` : "no expiry",
              ].join("\t"),
        );
      }
    });

  keys
    .command("revoke")
    .description("revoke an API key of the project through the gateway (needs the admin scope); it stops working at once")
    .argument("<id>", "the key's id (from `tessera keys list`)")
    .action(async (id: string) => {
      const { revokeKey } = await gateway().request(RevokeKeyDocument, { id });
      console.log(`${revokeKey.id} (${revokeKey.prefix}) revoked at ${revokeKey.revokedAt}`);
    });
}
