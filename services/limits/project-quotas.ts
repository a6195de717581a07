import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { sql, type Database } from "../core/database.ts";
import { quotaExceededError } from "./limit-errors.ts";

/**
 * The quotas counted from PostgreSQL rows: what a project has open or stored
 * is read from the rows that say so, so a crashed process can never leave a
 * count behind (a run or job that ends, however it ends, stops counting).
 */

export type QuotaHost = { db: Database; config: Pick<Config, "QUOTA_CONCURRENT_RUNS" | "QUOTA_CONCURRENT_JOBS" | "QUOTA_STORAGE_BYTES"> };

/** Jobs that count against QUOTA_CONCURRENT_JOBS: queued or running (what schema/generate.ts calls open). */
const OPEN_JOBS = `SELECT count(*)::int FROM "Job" WHERE "projectId" = $1 AND status::text IN ('QUEUED', 'RUNNING')`;

// QUOTA_CONCURRENT_RUNS is checked where a run is stored, in the same statement (workflows/engine/run-store.ts
// insertRun, the tessera_start_run function): counted under a per-project advisory lock, so two racing starts cannot
// both take the last slot. A child run (a `workflow` step) is part of its parent's run and is not counted.

/**
 * QUOTA_EXCEEDED when the project already has QUOTA_CONCURRENT_JOBS ingest or
 * generate jobs queued or running. Checked before anything is stored; two
 * requests racing for the last slot may both pass (one job over, never more
 * than the requests in flight at once).
 */
export async function checkConcurrentJobs(host: QuotaHost, projectId: string): Promise<void> {
  // Straight on node-postgres, prepared: every generate request makes this count.
  const [{ open }] = (await sql<{ open: number }>(host.db, `SELECT (${OPEN_JOBS}) AS open`, [projectId], "tessera_open_jobs")) as [{ open: number }];
  refuseOverJobQuota(host, open);
}

function refuseOverJobQuota(host: QuotaHost, open: number) {
  const limit = host.config.QUOTA_CONCURRENT_JOBS;
  if (open >= limit) {
    throw quotaExceededError(
      `this project has ${open} jobs queued or running, its limit (QUOTA_CONCURRENT_JOBS = ${limit}); send more when some end`,
      { quota: "QUOTA_CONCURRENT_JOBS", limit, used: open },
    );
  }
}

/**
 * An ingest within the project's quotas, both read in one statement: QUOTA_EXCEEDED before anything is stored when
 * the project has QUOTA_CONCURRENT_JOBS jobs open (checkConcurrentJobs), and new content stored only within
 * QUOTA_STORAGE_BYTES: `store` is called with the bytes it may take (the smaller of its own limit and what is left
 * of the quota) and must refuse past that while streaming, with PAYLOAD_TOO_LARGE; when the quota was the tighter
 * limit, that refusal becomes QUOTA_EXCEEDED. So content over the quota is never stored whole. The bytes a project
 * stores are the sum of its Asset rows (one per distinct content in a project: unique projectId + sha256), kept as a
 * running total by a trigger on Asset (ProjectStorage), so the check reads a few rows however many assets there are.
 */
export async function storeWithinIngestQuotas<T>(
  host: QuotaHost,
  projectId: string,
  maxBytes: number,
  store: (maxBytes: number) => Promise<T>,
): Promise<T> {
  type Usage = { open: number; used: number };
  const [{ open, used }] = (await sql<Usage>(
    host.db,
    `SELECT (${OPEN_JOBS}) AS open, (SELECT coalesce(sum(bytes), 0)::float8 FROM "ProjectStorage" WHERE "projectId" = $1) AS used`,
    [projectId],
    "tessera_ingest_quotas", // prepared: every upload reads it
  )) as [Usage];
  refuseOverJobQuota(host, open);
  const limit = host.config.QUOTA_STORAGE_BYTES;
  const left = Math.max(0, limit - used);
  if (left >= maxBytes) return store(maxBytes);
  try {
    return await store(left);
  } catch (error) {
    if (error instanceof TesseraError && error.code === ErrorCode.PAYLOAD_TOO_LARGE) {
      throw quotaExceededError(
        `this project stores ${used} bytes of its ${limit} (QUOTA_STORAGE_BYTES); this content is larger than the ${left} bytes left. Delete assets to make room`,
        { quota: "QUOTA_STORAGE_BYTES", limit, used },
      );
    }
    throw error;
  }
}
