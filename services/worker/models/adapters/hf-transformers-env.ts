import path from "node:path";
import { env } from "@huggingface/transformers";

// Never reach a hub at run time: exports come from MODELS_DIR (or `tessera models pull`).
env.allowRemoteModels = false;
env.allowLocalModels = true;

let loading: Promise<unknown> = Promise.resolve();

/**
 * Loads from an absolute export folder. transformers.js resolves model ids
 * against one global `localModelPath`, so loads run one at a time.
 */
export function fromExportFolder<T>(folder: string, load: (modelId: string) => Promise<T>): Promise<T> {
  const run = loading.then(() => {
    env.localModelPath = `${path.dirname(folder)}/`;
    return load(path.basename(folder));
  });
  loading = run.catch(() => {});
  return run;
}
