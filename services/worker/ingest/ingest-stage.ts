import type { Asset } from "../../core/database.ts";
import type { JobHandlerContext } from "../job-handler.ts";

/**
 * One step of turning stored bytes into a searchable asset (decode, encode,
 * index). Stages run in order; each reads what earlier ones left in `state`.
 */
export type IngestStage = {
  name: string;
  run(asset: Asset, state: Record<string, unknown>, context: JobHandlerContext): Promise<void>;
};
