import path from "node:path";

type Transformers = typeof import("@huggingface/transformers");

let transformers: Promise<Transformers> | undefined;
let loading: Promise<unknown> = Promise.resolve();

/** transformers.js, imported on first use (it is large), set never to reach a hub at run time. */
export function loadTransformers(): Promise<Transformers> {
  transformers ??= import("@huggingface/transformers").then((module) => {
    // Exports come from MODELS_DIR (or `tessera models pull`), never from a hub while serving.
    module.env.allowRemoteModels = false;
    module.env.allowLocalModels = true;
    return module;
  });
  return transformers;
}

/**
 * Loads from an absolute export folder. transformers.js resolves model ids
 * against one global `localModelPath`, so loads run one at a time.
 */
export function fromExportFolder<T>(folder: string, load: (modelId: string, module: Transformers) => Promise<T>): Promise<T> {
  const run = loading.then(async () => {
    const module = await loadTransformers();
    module.env.localModelPath = `${path.dirname(folder)}/`;
    return load(path.basename(folder), module);
  });
  loading = run.catch(() => {});
  return run;
}
