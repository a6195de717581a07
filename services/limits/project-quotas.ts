import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { Prisma, type Database } from "../core/database.ts";
import { quotaExceededError } from "./limit-errors.ts";

/**
 * The quotas counted from PostgreSQL rows: what a project has open or stored
 * is read from the rows that say so, so a crashed process can never leave a
 * count behind (a run or job that ends, however it ends, stops counting).
 */

export type QuotaHost = { db: Database; config: Pick<Config, "QUOTA_CONCURRENT_RUNS" | "QUOTA_CONCURRENT_JOBS" | "QUOTA_STORAGE_BYTES"> };

const OPEN_JOB_STATUSES = ["QUEUED", "RUNNING"] as const;

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
  const limit = host.config.QUOTA_CONCURRENT_JOBS;
  // Raw SQL: every ingest and generate request makes this count, and the model API compiles each call on the event loop.
  const [{ open }] = await host.db.$queryRaw<[{ open: number }]>`
    SELECT count(*)::int AS open FROM "Job" WHERE "projectId" = ${projectId} AND status::text IN (${Prisma.join([...OPEN_JOB_STATUSES])})`;
  if (open >= limit) {
    throw quotaExceededError(
      `this project has ${open} jobs queued or running, its limit (QUOTA_CONCURRENT_JOBS = ${limit}); send more when some end`,
      { quota: "QUOTA_CONCURRENT_JOBS", limit, used: open },
    );
  }
}

/** Bytes the project stores: one row per distinct content in a project (unique projectId + sha256), so a sum of rows. */
export async function storedBytes(db: Database, projectId: string): Promise<number> {
  const { _sum } = await db.asset.aggregate({ where: { projectId }, _sum: { byteSize: true } });
  return _sum.byteSize ?? 0;
}

/**
 * Stores new content only within the project's QUOTA_STORAGE_BYTES: `store`
 * is called with the bytes it may take (the smaller of its own limit and what
 * is left of the quota) and must refuse past that while streaming, with
 * PAYLOAD_TOO_LARGE; when the quota was the tighter limit, that refusal
 * becomes QUOTA_EXCEEDED. So content over the quota is never stored whole.
 */
export async function storeWithinStorageQuota<T>(
  host: QuotaHost,
  projectId: string,
  maxBytes: number,
  store: (maxBytes: number) => Promise<T>,
): Promise<T> {
  const limit = host.config.QUOTA_STORAGE_BYTES;
  const used = await storedBytes(host.db, projectId);
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
