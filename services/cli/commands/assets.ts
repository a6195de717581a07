import type { Command } from "commander";
import { callGateway, GatewayError } from "../gateway-client.ts";

const FAILED_ASSETS = /* GraphQL */ `
  query FailedAssets($after: String) {
    assets(status: FAILED, first: 100, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
  }
`;
const REINDEX = /* GraphQL */ `
  mutation Reindex($id: ID!) { reindexAsset(id: $id) { asset { id status } job { id } } }
`;

type FailedAssetsPage = { assets: { edges: Array<{ node: { id: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };

/** Refusals that pass with time: the project's job quota or rate; waited out this many times per asset. */
const WAIT_CODES = new Set(["QUOTA_EXCEEDED", "RATE_LIMITED"]);
const MAX_WAITS = 30;

/** Every FAILED asset of the project, read before any is re-queued (re-queuing takes them out of the list). */
async function failedAssetIds(): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  do {
    const page: FailedAssetsPage = await callGateway<FailedAssetsPage>(FAILED_ASSETS, { after });
    ids.push(...page.assets.edges.map((edge) => edge.node.id));
    after = page.assets.pageInfo.hasNextPage ? page.assets.pageInfo.endCursor : null;
  } while (after);
  return ids;
}

/** One asset's reindexAsset, waiting out a full job quota or a rate limit; the new job's id. */
async function reindexOne(id: string): Promise<string> {
  for (let waits = 0; ; waits++) {
    try {
      const result = await callGateway<{ reindexAsset: { job: { id: string } } }>(REINDEX, { id });
      return result.reindexAsset.job.id;
    } catch (error) {
      if (!(error instanceof GatewayError && WAIT_CODES.has(error.code)) || waits >= MAX_WAITS) throw error;
      const seconds = Number((error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds) || 5;
      console.error(`  ${id}: ${error.code}, waiting ${seconds} s`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

export function registerAssetsCommands(program: Command) {
  const assets = program.command("assets").description("manage the project's assets through the gateway (TESSERA_URL, TESSERA_API_KEY)");
  assets
    .command("reindex")
    .description("queue a new ingest of assets from their stored bytes: the given ids, or every FAILED asset with --failed")
    .argument("[ids...]", "asset ids")
    .option("--failed", "every FAILED asset of the project")
    .action(async (given: string[], options: { failed?: boolean }) => {
      if (given.length > 0 === Boolean(options.failed)) throw new Error("give asset ids or --failed, not both and not neither");
      const ids = options.failed ? await failedAssetIds() : given;
      if (ids.length === 0) {
        console.error("no FAILED assets");
        return;
      }
      let queued = 0;
      const refused: string[] = [];
      for (const [index, id] of ids.entries()) {
        const step = `[${index + 1}/${ids.length}]`;
        try {
          const jobId = await reindexOne(id);
          queued++;
          console.log(`${step} ${id} queued (job ${jobId})`);
        } catch (error) {
          // The gateway went away: the rest are untouched (still FAILED), and running the command again resumes.
          if (!(error instanceof GatewayError)) {
            throw new Error(`${(error as Error).message}\n${queued} of ${ids.length} queued before this; run the same command again to go on`);
          }
          refused.push(id);
          console.log(`${step} ${id} not queued: ${error.message}`);
        }
      }
      console.error(`${queued} of ${ids.length} assets queued for re-indexing${refused.length ? `, ${refused.length} refused` : ""}`);
      if (refused.length) process.exitCode = 1;
    });
}
