import fs from "node:fs";
import os from "node:os";
import type { Modality } from "../core/database.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import type { Logger } from "../core/logger.ts";
import { modelAdapters } from "./adapters/index.ts";
import { BatchSizeLog } from "./batch-size-log.ts";
import { DynamicBatcher } from "./dynamic-batcher.ts";
import { chooseExecutionProvider, parseDevice, type Device, type ExecutionChoice } from "./execution-provider.ts";
import { resizeForModel, type ImageInputSize } from "./image-preprocess.ts";
import { embeddedModalities, type ModelAdapter, type ModelHandle } from "./model-adapter.ts";
import { modelNotFound, toModelError } from "./model-errors.ts";
import { BUILT_IN_MANIFESTS_DIR, loadModelRegistry, matchesAnyGlob, type ModelRegistry, type ResolvedModel } from "./model-registry.ts";
import type { ModelInfo, ModelRuntime, OcrLine, SpaceVectors, SpeechSegment } from "./model-runtime.ts";
import { OnnxSessions } from "./onnx-sessions.ts";
import { OnnxThread } from "./onnx-thread.ts";
import { TextEncoderThread } from "./text-encoder-thread.ts";
import type { LocalModelCaller, ModelOperation, RemoteModelClient } from "./remote-model-calls.ts";
import { normalize } from "./vector-math.ts";
import type { DecodedImage } from "../assets/decoded-media.ts";
import { observeModelBatch } from "../observability/instruments.ts";
import type { ModelPreload } from "../observability/readiness.ts";

export type ModelServing = {
  /** "cuda" asks for the CUDA execution provider; without its libraries the runtime falls back to CPU. */
  device?: Device;
  /** Globs of model names this process serves (`clip-*`); default: every model whose files exist. */
  models?: string[];
  /** Globs of models this process calls on other workers (`--remote-models clip-*`) instead of running them. */
  remoteModels?: string[];
  /** Threads per onnxruntime session; default: all cores. */
  intraOpThreads?: number;
  /** Turn dynamic batching off (every request runs alone), for the batching bench. */
  batching?: boolean;
};

export type ModelRuntimeOptions = ModelServing & {
  /** Where weights live (MODELS_DIR); manifests there override the built-in ones. */
  modelsDir: string;
  /** Default: models/ at the repository root, then MODELS_DIR. */
  manifestDirs?: string[];
  logger: Logger;
  /** How calls of `remoteModels` reach the workers that serve them. */
  remote?: RemoteModelClient;
};

type Operation = Exclude<ModelOperation, "project" | "imageInput">;

/** MODEL_PRELOAD's word for every model this process runs. */
export const PRELOAD_SERVED = "served";

/** MODEL_PRELOAD (or `--preload`) names a model this process does not run: the process must not start. */
export class ModelPreloadError extends Error {
  constructor(readonly unmatched: string[], message: string) {
    super(message);
    this.name = "ModelPreloadError";
  }
}

/** A model this process can use: run here, or (`remote`) called on a worker that serves it. */
type Served = { model: ResolvedModel; adapter: ModelAdapter; remote?: boolean };

/**
 * The in-process ModelRuntime. Manifests are read on first use; each model's
 * session loads on its first call and is shared by the process; concurrent
 * calls for a model are grouped by a DynamicBatcher.
 */
export class LocalModelRuntime implements ModelRuntime, LocalModelCaller {
  private registry: ModelRegistry | undefined;
  private execution: ExecutionChoice | undefined;
  private sessions: OnnxSessions | undefined;
  private thread: OnnxThread | undefined;
  private textThread: TextEncoderThread | undefined;
  private handles = new Map<string, Promise<ModelHandle>>();
  private loaded = new Map<string, ModelHandle>();
  private batchers = new Map<string, DynamicBatcher<unknown, unknown>>();
  private remoteImageInputs = new Map<string, Promise<ImageInputSize | null>>();
  private preloading = new Map<string, ModelPreload>();
  private closing = false;

  constructor(private options: ModelRuntimeOptions) {}

  /** Sets what this process serves; the worker calls it from its command line before the first job. */
  configure(serving: ModelServing) {
    if (this.handles.size) throw new Error("models are already loaded: configure the runtime before its first use");
    this.options = { ...this.options, ...serving };
    this.registry = undefined;
    // Say at start-up which provider this worker will use (cheap: no model is loaded).
    this.execution = chooseExecutionProvider(this.options.device, this.options.logger);
  }

  /**
   * MODEL_PRELOAD: loads the models the globs name (`served`: every model this process runs), one at a time, each
   * with one warm-up input per operation so its sessions exist before the first job. Throws ModelPreloadError at
   * once, loading nothing, when a glob names no model this process runs. The promise settles when every load has
   * succeeded or failed; `preloads()` says which (for /ready). A failed load is logged and not retried: it stays
   * failed (and /ready 503) until the process restarts, while jobs that need the model still try it lazily.
   */
  startPreload(globs: string[]): Promise<void> {
    const models = this.modelsToPreload(globs);
    for (const { model } of models) this.preloading.set(model.manifest.name, { model: model.manifest.name, state: "waiting" });
    return (async () => {
      // A shutdown mid-way stops the preload: the next model would start threads that close() already stopped.
      for (const served of models) if (!this.closing) await this.preloadOne(served);
    })();
  }

  /** The models startPreload was given, with their state; [] without a preload. */
  preloads(): ModelPreload[] {
    return [...this.preloading.values()].map((preload) => ({ ...preload }));
  }

  /** Names of the models whose handles have loaded in this process, in load order. */
  loadedModels(): string[] {
    return [...this.loaded.keys()];
  }

  /** Every manifest read, served or not, with why not: for `tessera models list`. */
  describe(): Array<ModelInfo & { served: boolean; missing: string[]; source: string }> {
    const served = new Map(this.served().map(({ model, remote }) => [model.manifest.name, remote === true]));
    return this.loadRegistry().models.map((model) => ({
      ...this.info(model, served.get(model.manifest.name)),
      served: served.has(model.manifest.name),
      missing: model.missing,
      source: model.source,
    }));
  }

  /** Manifests that failed validation, with their problems. */
  manifestProblems() {
    return this.loadRegistry().problems;
  }

  list(): ModelInfo[] {
    return this.served().map(({ model, remote }) => this.info(model, remote));
  }

  async embedText(texts: string[]): Promise<SpaceVectors[]> {
    return this.embed("TEXT", "embedText", texts);
  }

  async embedImages(images: DecodedImage[]): Promise<SpaceVectors[]> {
    return this.embed("IMAGE", "embedImages", images);
  }

  async embedAudio(clips: Float32Array[]): Promise<SpaceVectors[]> {
    return this.embed("AUDIO", "embedAudio", clips);
  }

  spacesFor(modality: Modality): string[] {
    if (modality === "VIDEO") return [...new Set([...this.spacesFor("IMAGE"), ...this.spacesFor("AUDIO")])];
    const direct = this.embedders(modality).map(({ model }) => model.manifest.output.space!);
    return [...direct, ...this.projectors(new Set(direct)).map(({ model }) => model.manifest.output.space!)];
  }

  async readText(image: DecodedImage): Promise<OcrLine[]> {
    const served = this.forTask("ocr");
    return served ? this.call<DecodedImage, OcrLine[]>(served, "readText", image) : [];
  }

  async detectSpeech(clip: Float32Array): Promise<SpeechSegment[]> {
    const served = this.forTask("vad");
    return served ? this.call<Float32Array, SpeechSegment[]>(served, "detectSpeech", clip) : [];
  }

  async transcribe(clip: Float32Array): Promise<string | null> {
    const served = this.forTask("transcribe");
    return served ? this.call<Float32Array, string>(served, "transcribe", clip) : null;
  }

  /** Early fusion through a projector model: one vector per row of per-space inputs. */
  async project(projector: string, inputs: Float32Array[][]): Promise<Float32Array[]> {
    const served = this.served().find(({ model }) => model.manifest.name === projector && model.manifest.task === "project");
    if (!served) throw modelNotFound(projector, "no projector of that name is served");
    try {
      if (served.remote) return (await this.remoteClient().call<Float32Array[]>(projector, "project", inputs)).map(normalize);
      const handle = await this.handle(served);
      return (await handle.project!(inputs)).map(normalize);
    } catch (error) {
      throw toModelError(projector, error);
    }
  }

  /** The models run in this process (not remote ones): the ones whose calls it takes from other workers. */
  localModels() {
    return this.served()
      .filter((served) => !served.remote)
      .map(({ model }) => ({ name: model.manifest.name, maxBatchSize: model.manifest.batch.maxBatchSize }));
  }

  /** One call of a model run here, on behalf of another worker. */
  async callModel(model: string, operation: ModelOperation, input: unknown): Promise<unknown> {
    const served = this.served().find((entry) => entry.model.manifest.name === model && !entry.remote);
    if (!served) throw modelNotFound(model, "this worker does not serve it");
    if (operation === "project") return this.project(model, input as Float32Array[][]);
    if (operation === "imageInput") return (await this.handle(served)).imageInput ?? null;
    return this.call(served, operation, input);
  }

  /** The batch sizes each model computed (the runner's, where it joins the batcher's batches), for benches and tests. */
  batchSizes(model: string, operation: Operation): BatchSizeLog {
    return this.loaded.get(model)?.ranBatchSizes?.(operation) ?? this.batchers.get(`${model}:${operation}`)?.batchSizes ?? new BatchSizeLog();
  }

  /** Milliseconds the inference thread has computed so far (the CLIP image tower runs there), for benches. */
  inferenceThreadBusyMs(): number {
    return this.thread?.busyMs ?? 0;
  }

  /** Milliseconds the text encoder thread has spent encoding so far, for benches. */
  textThreadBusyMs(): number {
    return this.textThread?.busyMs ?? 0;
  }

  async close() {
    this.closing = true;
    const handles = [...this.handles.values()];
    this.handles.clear();
    this.loaded.clear();
    this.batchers.clear();
    await Promise.all(handles.map(async (handle) => (await handle.catch(() => null))?.close?.()));
    await this.sessions?.close();
    await this.thread?.close();
    this.thread = undefined;
    await this.textThread?.close();
    this.textThread = undefined;
  }

  private loadRegistry(): ModelRegistry {
    if (!this.registry) {
      const dirs = this.options.manifestDirs ?? [BUILT_IN_MANIFESTS_DIR, this.options.modelsDir];
      this.registry = loadModelRegistry(dirs, this.options.modelsDir);
      // An export folder that exists but lacks a graph (still being written, half copied) is not served.
      for (const model of this.registry.models) {
        const required = model.missing.length ? [] : (modelAdapters[model.manifest.adapter]?.requiredFiles?.(model) ?? []);
        model.missing.push(...required.filter((file) => !fs.existsSync(file)));
        if (model.missing.length && required.length) {
          this.options.logger.warn({ model: model.manifest.name, missing: model.missing }, "model export is incomplete and is not served");
        }
      }
      for (const problem of this.registry.problems) {
        this.options.logger.error({ file: problem.file, problems: problem.problems }, "model manifest is invalid and is skipped");
      }
    }
    return this.registry;
  }

  private executionChoice(): ExecutionChoice {
    this.execution ??= chooseExecutionProvider(this.options.device, this.options.logger);
    return this.execution;
  }

  /**
   * Models this process uses: those it runs (files present, adapter known, device allowed, name matches
   * --models), then those it calls on other workers (name matches --remote-models, not run here).
   */
  private served(): Served[] {
    const device = this.executionChoice().device;
    const local = this.loadRegistry().models.flatMap((model) => {
      const adapter = modelAdapters[model.manifest.adapter];
      if (!adapter || model.missing.length) return [];
      if (!model.manifest.devices.includes(device)) return [];
      if (this.options.models?.length && !matchesAnyGlob(model.manifest.name, this.options.models)) return [];
      return [{ model, adapter }];
    });
    const remoteGlobs = this.options.remoteModels ?? [];
    if (remoteGlobs.length === 0) return local;
    const runHere = new Set(local.map(({ model }) => model.manifest.name));
    // The files live on the serving worker: a manifest is all this side needs.
    const remote = this.loadRegistry().models.flatMap((model) => {
      const adapter = modelAdapters[model.manifest.adapter];
      if (!adapter || runHere.has(model.manifest.name) || !matchesAnyGlob(model.manifest.name, remoteGlobs)) return [];
      return [{ model, adapter, remote: true }];
    });
    return [...local, ...remote];
  }

  /** The local models the preload globs name; a glob naming none of them is a ModelPreloadError. */
  private modelsToPreload(globs: string[]): Served[] {
    // A remote-format model (an HTTP inference server) has nothing to load in this process.
    const runnable = this.served().filter(({ model, remote }) => !remote && model.manifest.format !== "remote");
    const names = runnable.map(({ model }) => model.manifest.name);
    const unmatched = globs.filter((glob) => (glob === PRELOAD_SERVED ? names.length === 0 : !names.some((name) => matchesAnyGlob(name, [glob]))));
    if (unmatched.length) {
      const known = this.loadRegistry().models.map((model) => model.manifest.name);
      const elsewhere = known.filter((name) => !names.includes(name) && unmatched.some((glob) => matchesAnyGlob(name, [glob])));
      throw new ModelPreloadError(
        unmatched,
        `MODEL_PRELOAD (--preload): ${unmatched.join(", ")} ${unmatched.length === 1 ? "names" : "name"} no model this worker runs; ` +
          `it runs: ${names.join(", ") || "none"}` +
          (elsewhere.length ? ` (${elsewhere.join(", ")}: known, but not run here: outside --models, files missing, another device, or remote)` : ""),
      );
    }
    return globs.includes(PRELOAD_SERVED) ? runnable : runnable.filter(({ model }) => matchesAnyGlob(model.manifest.name, globs));
  }

  private async preloadOne(served: Served) {
    const name = served.model.manifest.name;
    this.preloading.set(name, { model: name, state: "loading" });
    const started = performance.now();
    const loadMs = () => Math.round(performance.now() - started);
    try {
      await this.warmUp(await this.handle(served));
      this.preloading.set(name, { model: name, state: "loaded", loadMs: loadMs() });
      this.options.logger.info({ model: name, ms: loadMs() }, "model preloaded");
    } catch (caught) {
      if (this.closing) return; // the load was cut short by close(), not broken
      const error = toModelError(name, caught);
      this.preloading.set(name, { model: name, state: "failed", error: error.message, loadMs: loadMs() });
      this.options.logger.error({ model: name, err: error }, "model preload failed: not retried, this process stays not ready until it restarts");
    }
  }

  /**
   * One small input through each operation of a loaded model, straight to the handle (no batcher, no batch metrics):
   * adapters open their sessions on first use (CLIP's towers), and a broken graph fails here rather than on a job.
   */
  private async warmUp(handle: ModelHandle) {
    const silence = new Float32Array(16_000);
    const blank = async () => {
      const image: DecodedImage = { rgb: Buffer.alloc(32 * 32 * 3, 128), width: 32, height: 32 };
      return handle.imageInput ? resizeForModel(image, handle.imageInput) : image;
    };
    if (handle.embedText) await handle.embedText(["warm-up"]);
    if (handle.embedImages) await handle.embedImages([await blank()]);
    if (handle.embedAudio) await handle.embedAudio([silence]);
    if (handle.readText) await handle.readText([await blank()]);
    if (handle.detectSpeech) await handle.detectSpeech([silence]);
    if (handle.transcribe) await handle.transcribe([silence]);
  }

  private remoteClient(): RemoteModelClient {
    if (!this.options.remote) throw new Error("remote models are configured but this process has no queue to reach them");
    return this.options.remote;
  }

  /** One embedder per space for a modality: the highest priority wins. */
  private embedders(modality: Modality): Served[] {
    const bySpace = new Map<string, Served>();
    const candidates = this.served()
      .filter(({ model, adapter }) => model.manifest.task === "embed" && model.manifest.output.space && embeddedModalities(adapter, model).includes(modality))
      .sort((a, b) => b.model.manifest.priority - a.model.manifest.priority || a.model.manifest.name.localeCompare(b.model.manifest.name));
    for (const candidate of candidates) {
      const space = candidate.model.manifest.output.space!;
      if (!bySpace.has(space)) bySpace.set(space, candidate);
    }
    return [...bySpace.values()];
  }

  /** The embedder that writes a space (for any modality), by priority. */
  private spaceOwner(space: string): string | undefined {
    const owners = (["TEXT", "IMAGE", "AUDIO"] as const).flatMap((modality) => this.embedders(modality)).filter(({ model }) => model.manifest.output.space === space);
    owners.sort((a, b) => b.model.manifest.priority - a.model.manifest.priority);
    return owners[0]?.model.manifest.name;
  }

  private forTask(task: string): Served | undefined {
    return this.served()
      .filter(({ model }) => model.manifest.task === task)
      .sort((a, b) => b.model.manifest.priority - a.model.manifest.priority)[0];
  }

  private info(model: ResolvedModel, remote = false): ModelInfo {
    const manifest = model.manifest;
    return {
      name: manifest.name,
      modality: manifest.modality,
      task: manifest.task,
      dimensions: manifest.output.dimensions ?? null,
      device: remote || manifest.format === "remote" ? "remote" : this.executionChoice().device,
      space: manifest.task === "embed" ? (manifest.output.space ?? null) : null,
    };
  }

  private async embed<I>(modality: Modality, operation: Operation, inputs: I[]): Promise<SpaceVectors[]> {
    if (inputs.length === 0) return [];
    const direct = await this.embedDirect(modality, operation, inputs);
    return [...direct, ...(await this.projectInto(direct))];
  }

  /**
   * Input projection (early fusion): a served projector whose input spaces
   * this input reached brings it into a space no encoder of its modality
   * writes (e.g. audio into the image-text space).
   */
  private async projectInto(direct: SpaceVectors[]): Promise<SpaceVectors[]> {
    const reached = new Map(direct.map((entry) => [entry.space, entry]));
    const projected: SpaceVectors[] = [];
    for (const { model } of this.projectors(new Set(reached.keys()))) {
      const { name, projector } = model.manifest;
      const inputs = direct[0]!.vectors.map((_, row) => projector!.from.map((space) => reached.get(space)!.vectors[row]!));
      projected.push({ space: model.manifest.output.space!, model: name, vectors: await this.project(name, inputs) });
    }
    return projected;
  }

  private projectors(reached: Set<string>): Served[] {
    const taken = new Set(reached);
    return this.served()
      .filter(({ model }) => model.manifest.task === "project" && model.manifest.output.space && model.manifest.projector)
      .sort((a, b) => b.model.manifest.priority - a.model.manifest.priority)
      .filter(({ model }) => {
        const { projector, output } = model.manifest;
        if (taken.has(output.space!) || !projector!.from.every((space) => reached.has(space))) return false;
        // A projector trained into one model's space is wrong for any other model's vectors there.
        if (projector!.for && this.spaceOwner(output.space!) !== projector!.for) return false;
        taken.add(output.space!);
        return true;
      });
  }

  private async embedDirect<I>(modality: Modality, operation: Operation, inputs: I[]): Promise<SpaceVectors[]> {
    return Promise.all(
      this.embedders(modality).map(async (served) => {
        const { name, output } = served.model.manifest;
        const vectors = await Promise.all(inputs.map((input) => this.call<I, Float32Array>(served, operation, input)));
        for (const vector of vectors) {
          if (output.dimensions && vector.length !== output.dimensions) {
            throw toModelError(name, new Error(`shape mismatch: the manifest says ${output.dimensions} dimensions, the model gave ${vector.length}`));
          }
          if (output.normalize) normalize(vector);
        }
        return { space: output.space!, model: name, vectors };
      }),
    );
  }

  /** One input through the model's batcher for this operation. */
  private async call<I, O>(served: Served, operation: Operation, input: I): Promise<O> {
    const name = served.model.manifest.name;
    try {
      // Batched on the serving worker, which takes many calls from its queue at once.
      if (served.remote) {
        const size = operation === "embedImages" ? await this.remoteImageInput(name) : null;
        const sent = size ? await resizeForModel(input as DecodedImage, size) : input;
        return await this.remoteClient().call<O>(name, operation, sent);
      }
      const handle = await this.handle(served);
      const batcher = this.batcher(served, operation, handle) as DynamicBatcher<I, O>;
      // Resized as it arrives, not in the batch: the resizing overlaps the batch the model is computing.
      if (operation === "embedImages" && handle.imageInput) return await batcher.runOne((await resizeForModel(input as DecodedImage, handle.imageInput)) as I);
      return await batcher.runOne(input);
    } catch (error) {
      throw toModelError(name, error);
    }
  }

  /**
   * The input size of a remote model's image tower, asked once per model: images are resized here
   * and sent at that size. Null sends them whole: the model has no size to give, or the serving
   * worker predates the question. Any other failure (no worker answers) is the call's failure,
   * and the question is asked again next time.
   */
  private remoteImageInput(model: string): Promise<ImageInputSize | null> {
    let asked = this.remoteImageInputs.get(model);
    if (!asked) {
      asked = this.remoteClient()
        .call<ImageInputSize | null>(model, "imageInput", null)
        .catch((error: unknown) => {
          if (error instanceof TesseraError && error.code === ErrorCode.BAD_USER_INPUT) return null;
          this.remoteImageInputs.delete(model);
          throw error;
        });
      this.remoteImageInputs.set(model, asked);
    }
    return asked;
  }

  private batcher(served: Served, operation: Operation, handle: ModelHandle) {
    const { name, batch } = served.model.manifest;
    const key = `${name}:${operation}`;
    let batcher = this.batchers.get(key);
    if (!batcher) {
      const run = handle[operation] as ((items: unknown[]) => Promise<unknown[]>) | undefined;
      if (!run) throw new Error(`its adapter ${served.model.manifest.adapter} cannot ${operation}`);
      const batching = this.options.batching !== false;
      batcher = new DynamicBatcher<unknown, unknown>(
        {
          maxBatchSize: batching ? batch.maxBatchSize : 1,
          maxWaitMs: batching ? batch.maxWaitMs : 0,
          maxCost: batching && operation === "embedText" ? batch.maxTokens : undefined,
          cost: handle.countTokens ? (text) => handle.countTokens!(text as string) : undefined,
          handOverAhead: batching && (handle.queuesBatches as string[] | undefined)?.includes(operation) === true,
        },
        // Each batch's size, time and device as metrics and a span (services/observability).
        (items) => observeModelBatch({ model: name, operation, device: this.executionChoice().device }, items.length, () => run.call(handle, items)),
      );
      this.batchers.set(key, batcher);
    }
    return batcher;
  }

  private handle(served: Served): Promise<ModelHandle> {
    const name = served.model.manifest.name;
    let handle = this.handles.get(name);
    if (!handle) {
      const execution = this.executionChoice();
      this.sessions ??= new OnnxSessions(execution, this.options.intraOpThreads);
      this.thread ??= new OnnxThread(execution, this.options.intraOpThreads);
      this.textThread ??= new TextEncoderThread();
      const context = {
        execution,
        sessions: this.sessions,
        thread: this.thread,
        textThread: this.textThread,
        intraOpThreads: this.options.intraOpThreads,
        batching: this.options.batching !== false,
        logger: this.options.logger,
      };
      const started = Date.now();
      handle = served.adapter.load(served.model, context).then(
        (loaded) => {
          this.loaded.set(name, loaded);
          this.options.logger.info({ model: name, device: execution.device, ms: Date.now() - started }, "model loaded");
          return loaded;
        },
        (error) => {
          throw toModelError(name, error);
        },
      );
      this.handles.set(name, handle);
      // A failed load is forgotten, so the next job tries again (the file may have been fixed).
      handle.catch(() => this.handles.delete(name));
    }
    return handle;
  }
}

export function createModelRuntime(options: ModelRuntimeOptions) {
  return new LocalModelRuntime({ intraOpThreads: defaultThreads(), device: defaultDevice(), ...options });
}

/** MODEL_DEVICE=cuda (or webgpu) makes every process of a GPU host ask for it; `--device` overrides it per worker. */
function defaultDevice(): Device | undefined {
  return parseDevice(process.env.MODEL_DEVICE, "MODEL_DEVICE");
}

/** onnxruntime's default takes every core; leave that unless told (MODEL_THREADS). */
function defaultThreads(): number | undefined {
  const value = Number(process.env.MODEL_THREADS);
  return Number.isInteger(value) && value > 0 ? Math.min(value, os.availableParallelism()) : undefined;
}

