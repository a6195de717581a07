import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { imagesToTensorData } from "../../services/models/image-preprocess.ts";
import { BUILT_IN_MANIFESTS_DIR } from "../../services/models/model-registry.ts";
import { loadRemoteTokenizer, type RemoteTokenizer } from "../../services/models/remote-encoder-inputs.ts";

/*
 * Inference servers written from their protocols' specifications, standing in for Triton and for Infinity/vLLM in
 * tests. Both compute real vectors: they run the bundled tessera-emoji-clip graphs (models/tessera-emoji-clip) on
 * onnxruntime-node, so a remote encoder's vectors can be compared with the local adapter's for the same inputs.
 *
 * KServe v2 / Open Inference Protocol (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):
 * GET /v2/health/ready, GET /v2/models/{m}[/versions/{v}] (metadata), POST .../infer with JSON tensors or the
 * binary tensor data extension (Inference-Header-Content-Length; binary_data_size; binary_data / binary_data_output).
 * Models: emoji_text (input_ids, attention_mask INT64 -> text_embeds), emoji_vision (pixel_values FP32
 * [-1, 3, 48, 48] -> image_embeds), emoji_text_raw (TEXT BYTES [-1, 1], tokenised by the server, as a Triton
 * ensemble with a tokenizer step would).
 *
 * OpenAI embeddings (POST /v1/embeddings): `input` text(s); images as data: URLs with `modality: "image"`
 * (Infinity), or a chat `messages` list with one image_url part (vLLM). Bearer key checked when given.
 */

export const EMOJI_CLIP_DIR = path.join(BUILT_IN_MANIFESTS_DIR, "tessera-emoji-clip");
const IMAGE_SIDE = 48;
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** What the next infer/embeddings request meets: an error status, or a delay before the normal answer. */
export type Fault = { status: number; retryAfterSeconds?: number; message?: string } | { delayMs: number };

type Tensor = { name: string; datatype: string; shape: number[]; data: Float32Array | BigInt64Array | string[] };

export type RecordedCall = { path: string; batch: number; binary: boolean; authorization?: string; body: Record<string, unknown> };

export type TestInferenceServer = {
  url: string;
  /** Faults for the coming model requests, used up in order (health and metadata requests never fail). */
  faults: Fault[];
  /** Model requests answered or refused, in order. */
  calls: RecordedCall[];
  /** Makes /v2/health/ready answer 503. */
  ready: boolean;
  /** KServe metadata: the output's last dimension reported as -1 (dynamic), so a wrong size shows only in answers. */
  dynamicOutputShape: boolean;
  close(): Promise<void>;
};

type EmojiClip = { text: ort.InferenceSession; vision: ort.InferenceSession; tokenizer: RemoteTokenizer };

let emojiClip: Promise<EmojiClip> | undefined;

function loadEmojiClip(): Promise<EmojiClip> {
  emojiClip ??= (async () => ({
    text: await ort.InferenceSession.create(path.join(EMOJI_CLIP_DIR, "onnx", "text_model.onnx")),
    vision: await ort.InferenceSession.create(path.join(EMOJI_CLIP_DIR, "onnx", "vision_model.onnx")),
    tokenizer: await loadRemoteTokenizer(EMOJI_CLIP_DIR, 32),
  }))();
  return emojiClip;
}

async function embedTexts(texts: string[]): Promise<Float32Array> {
  const clip = await loadEmojiClip();
  const { ids, mask, shape } = clip.tokenizer(texts);
  return runText(ids, mask, shape);
}

async function runText(ids: BigInt64Array, mask: BigInt64Array, shape: number[]): Promise<Float32Array> {
  const clip = await loadEmojiClip();
  const result = await clip.text.run({ input_ids: new ort.Tensor("int64", ids, shape), attention_mask: new ort.Tensor("int64", mask, shape) });
  return result.text_embeds!.data as Float32Array;
}

async function runVision(pixels: Float32Array, count: number): Promise<Float32Array> {
  const clip = await loadEmojiClip();
  const result = await clip.vision.run({ pixel_values: new ort.Tensor("float32", pixels, [count, 3, IMAGE_SIDE, IMAGE_SIDE]) });
  return result.image_embeds!.data as Float32Array;
}

/** A data: URL's image, decoded and brought to the model's input as the CLIP preprocessing does. */
async function embedImageUrls(urls: string[]): Promise<Float32Array> {
  const images = await Promise.all(
    urls.map(async (url) => {
      const match = /^data:image\/[a-z]+;base64,(.+)$/.exec(url);
      if (!match) throw new RequestError(400, "only data: URLs of images are accepted here");
      const { data, info } = await sharp(Buffer.from(match[1]!, "base64")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { rgb: data, width: info.width, height: info.height };
    }),
  );
  const pixels = await imagesToTensorData(images, { width: IMAGE_SIDE, height: IMAGE_SIDE, resize: "cover-crop", scale: 1 / 255, mean: CLIP_MEAN, std: CLIP_STD });
  return runVision(pixels, images.length);
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type KserveModel = {
  inputs: Array<{ name: string; datatype: string; shape: number[] }>;
  output: { name: string; datatype: string; shape: number[] };
  run(inputs: Map<string, Tensor>): Promise<{ data: Float32Array; shape: number[] }>;
};

const DIMENSIONS = 128;

const kserveModels: Record<string, KserveModel> = {
  emoji_text: {
    inputs: [
      { name: "input_ids", datatype: "INT64", shape: [-1, -1] },
      { name: "attention_mask", datatype: "INT64", shape: [-1, -1] },
    ],
    output: { name: "text_embeds", datatype: "FP32", shape: [-1, DIMENSIONS] },
    async run(inputs) {
      const ids = inputs.get("input_ids")!;
      const mask = inputs.get("attention_mask")!;
      if (String(ids.shape) !== String(mask.shape)) throw new RequestError(400, "input_ids and attention_mask differ in shape");
      return { data: await runText(ids.data as BigInt64Array, mask.data as BigInt64Array, ids.shape), shape: [ids.shape[0]!, DIMENSIONS] };
    },
  },
  emoji_text_raw: {
    inputs: [{ name: "TEXT", datatype: "BYTES", shape: [-1, 1] }],
    output: { name: "text_embeds", datatype: "FP32", shape: [-1, DIMENSIONS] },
    async run(inputs) {
      const texts = inputs.get("TEXT")!.data as string[];
      return { data: await embedTexts(texts), shape: [texts.length, DIMENSIONS] };
    },
  },
  emoji_vision: {
    inputs: [{ name: "pixel_values", datatype: "FP32", shape: [-1, 3, IMAGE_SIDE, IMAGE_SIDE] }],
    output: { name: "image_embeds", datatype: "FP32", shape: [-1, DIMENSIONS] },
    async run(inputs) {
      const pixels = inputs.get("pixel_values")!;
      if (pixels.shape.length !== 4 || pixels.shape[1] !== 3 || pixels.shape[2] !== IMAGE_SIDE || pixels.shape[3] !== IMAGE_SIDE) {
        throw new RequestError(400, `pixel_values must be [-1, 3, ${IMAGE_SIDE}, ${IMAGE_SIDE}], got [${pixels.shape.join(", ")}]`);
      }
      return { data: await runVision(pixels.data as Float32Array, pixels.shape[0]!), shape: [pixels.shape[0]!, DIMENSIONS] };
    },
  },
};

function elementCount(shape: number[]) {
  return shape.reduce((product, size) => product * size, 1);
}

/** One input tensor of a request, from JSON `data` or from its slice of the binary section. */
function readTensor(spec: { name: string; datatype: string; shape: number[]; data?: unknown; parameters?: { binary_data_size?: number } }, binary: Buffer, offset: number): { tensor: Tensor; used: number } {
  const count = elementCount(spec.shape);
  const size = spec.parameters?.binary_data_size;
  if (size !== undefined) {
    const bytes = binary.subarray(offset, offset + size);
    if (bytes.length !== size) throw new RequestError(400, `input ${spec.name}: binary_data_size ${size} runs past the body`);
    let data: Tensor["data"];
    if (spec.datatype === "FP32") data = new Float32Array(new Uint8Array(bytes).buffer);
    else if (spec.datatype === "INT64") data = new BigInt64Array(new Uint8Array(bytes).buffer);
    else if (spec.datatype === "BYTES") {
      const texts: string[] = [];
      for (let at = 0; at < bytes.length; ) {
        const length = bytes.readUInt32LE(at);
        texts.push(bytes.subarray(at + 4, at + 4 + length).toString("utf8"));
        at += 4 + length;
      }
      data = texts;
    } else throw new RequestError(400, `input ${spec.name}: datatype ${spec.datatype} is not supported`);
    if (data.length !== count) throw new RequestError(400, `input ${spec.name}: ${data.length} elements for shape [${spec.shape.join(", ")}]`);
    return { tensor: { name: spec.name, datatype: spec.datatype, shape: spec.shape, data }, used: size };
  }
  if (!Array.isArray(spec.data)) throw new RequestError(400, `input ${spec.name} has neither data nor binary_data_size`);
  const flat = (spec.data as unknown[]).flat(Infinity);
  if (flat.length !== count) throw new RequestError(400, `input ${spec.name}: ${flat.length} elements for shape [${spec.shape.join(", ")}]`);
  const data =
    spec.datatype === "FP32"
      ? Float32Array.from(flat as number[])
      : spec.datatype === "INT64"
        ? BigInt64Array.from((flat as number[]).map((value) => BigInt(value)))
        : (flat as string[]).map(String);
  return { tensor: { name: spec.name, datatype: spec.datatype, shape: spec.shape, data }, used: 0 };
}

function send(response: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const bytes = Buffer.from(JSON.stringify(body));
  response.writeHead(status, { "content-type": "application/json", "content-length": String(bytes.length), ...headers });
  response.end(bytes);
}

async function readBody(request: http.IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of request) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function listen(handler: (request: http.IncomingMessage, response: http.ServerResponse, body: Buffer, server: TestInferenceServer) => Promise<void>, base: string): Promise<TestInferenceServer> {
  const state: TestInferenceServer = {
    url: "",
    faults: [],
    calls: [],
    ready: true,
    dynamicOutputShape: false,
    close: async () => {},
  };
  const server = http.createServer((request, response) => {
    readBody(request)
      .then((body) => handler(request, response, body, state))
      .catch((error: unknown) => {
        const status = error instanceof RequestError ? error.status : 500;
        if (!response.headersSent) send(response, status, { error: error instanceof Error ? error.message : String(error) });
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${base}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** Applies the next fault, if any: true when it answered the request itself. */
async function applyFault(state: TestInferenceServer, response: http.ServerResponse, errorBody: (message: string) => unknown): Promise<boolean> {
  const fault = state.faults.shift();
  if (!fault) return false;
  if ("delayMs" in fault) {
    await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    return response.destroyed;
  }
  send(response, fault.status, errorBody(fault.message ?? `injected ${fault.status}`), fault.retryAfterSeconds !== undefined ? { "retry-after": String(fault.retryAfterSeconds) } : {});
  return true;
}

export function startKserveServer(): Promise<TestInferenceServer> {
  return listen(async (request, response, body, state) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (request.method === "GET" && url.pathname === "/v2/health/ready") {
      response.writeHead(state.ready ? 200 : 503).end();
      return;
    }
    const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer)?$/.exec(url.pathname);
    const name = match ? decodeURIComponent(match[1]!) : "";
    const model = kserveModels[name];
    if (!match || !model || (match[2] !== undefined && match[2] !== "1")) {
      send(response, 404, { error: `unknown model or path: ${url.pathname}` });
      return;
    }
    if (request.method === "GET" && !match[3]) {
      const output = state.dynamicOutputShape ? { ...model.output, shape: [-1, -1] } : model.output;
      send(response, 200, { name, versions: ["1"], platform: "onnxruntime_onnx", inputs: model.inputs, outputs: [output] });
      return;
    }
    if (request.method !== "POST" || !match[3]) {
      send(response, 405, { error: "method not allowed" });
      return;
    }
    const headerLength = request.headers["inference-header-content-length"];
    const jsonLength = headerLength === undefined ? body.length : Number(headerLength);
    if (!Number.isInteger(jsonLength) || jsonLength > body.length) throw new RequestError(400, "bad Inference-Header-Content-Length");
    let parsed: {
      id?: string;
      inputs?: Array<{ name: string; datatype: string; shape: number[]; data?: unknown; parameters?: { binary_data_size?: number } }>;
      outputs?: Array<{ name: string; parameters?: { binary_data?: boolean } }>;
      parameters?: { binary_data_output?: boolean };
    };
    try {
      parsed = JSON.parse(body.subarray(0, jsonLength).toString("utf8"));
    } catch {
      throw new RequestError(400, "the request header is not JSON");
    }
    const binaryIn = headerLength !== undefined;
    state.calls.push({ path: url.pathname, batch: parsed.inputs?.[0]?.shape?.[0] ?? 0, binary: binaryIn, body: parsed as Record<string, unknown> });
    if (await applyFault(state, response, (message) => ({ error: message }))) return;
    const inputs = new Map<string, Tensor>();
    let offset = 0;
    const binary = body.subarray(jsonLength);
    for (const spec of parsed.inputs ?? []) {
      const declared = model.inputs.find((input) => input.name === spec.name);
      if (!declared) throw new RequestError(400, `unexpected inference input '${spec.name}' for model '${name}'`);
      if (declared.datatype !== spec.datatype) throw new RequestError(400, `input ${spec.name}: expected ${declared.datatype}, got ${spec.datatype}`);
      const { tensor, used } = readTensor(spec, binary, offset);
      offset += used;
      inputs.set(spec.name, tensor);
    }
    const missing = model.inputs.filter((input) => !inputs.has(input.name));
    if (missing.length) throw new RequestError(400, `expected inputs ${missing.map((input) => input.name).join(", ")}`);
    const requested = parsed.outputs ?? [{ name: model.output.name }];
    if (requested.some((output) => output.name !== model.output.name)) throw new RequestError(400, `unknown output requested`);
    const result = await model.run(inputs);
    const wantsBinary = requested[0]?.parameters?.binary_data ?? parsed.parameters?.binary_data_output ?? false;
    const output = { name: model.output.name, datatype: "FP32", shape: result.shape };
    if (!wantsBinary) {
      send(response, 200, { model_name: name, model_version: "1", ...(parsed.id ? { id: parsed.id } : {}), outputs: [{ ...output, data: Array.from(result.data) }] });
      return;
    }
    const tensorBytes = Buffer.from(result.data.buffer, result.data.byteOffset, result.data.byteLength);
    const header = Buffer.from(JSON.stringify({ model_name: name, model_version: "1", outputs: [{ ...output, parameters: { binary_data_size: tensorBytes.length } }] }));
    response.writeHead(200, { "content-type": "application/octet-stream", "inference-header-content-length": String(header.length) });
    response.end(Buffer.concat([header, tensorBytes]));
  }, "");
}

/**
 * OpenAI-compatible embeddings over the emoji CLIP as model "emoji-clip". `dimensions`: the size it answers with
 * (the first n values of each vector, as a server running another model would give another size).
 */
export function startOpenAiEmbeddingsServer(options: { apiKey?: string; dimensions?: number } = {}): Promise<TestInferenceServer> {
  return listen(async (request, response, body, state) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const errorBody = (message: string) => ({ error: { message, type: "invalid_request_error" } });
    if (request.method !== "POST" || url.pathname !== "/v1/embeddings") {
      send(response, 404, errorBody(`no route ${request.method} ${url.pathname}`));
      return;
    }
    let parsed: { model?: string; input?: string | string[]; modality?: string; messages?: Array<{ content?: Array<{ type: string; image_url?: { url: string }; text?: string }> }> };
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      send(response, 400, errorBody("the body is not JSON"));
      return;
    }
    const inputs = parsed.messages ? 1 : Array.isArray(parsed.input) ? parsed.input.length : 1;
    state.calls.push({ path: url.pathname, batch: inputs, binary: false, authorization: request.headers.authorization, body: parsed as Record<string, unknown> });
    if (options.apiKey && request.headers.authorization !== `Bearer ${options.apiKey}`) {
      send(response, 401, errorBody("Incorrect API key provided"));
      return;
    }
    if (await applyFault(state, response, errorBody)) return;
    if (parsed.model !== "emoji-clip") {
      send(response, 404, errorBody(`The model \`${parsed.model}\` does not exist`));
      return;
    }
    let flat: Float32Array;
    let count: number;
    if (parsed.messages) {
      const parts = parsed.messages.flatMap((message) => message.content ?? []);
      const images = parts.filter((part) => part.type === "image_url").map((part) => part.image_url!.url);
      if (images.length !== 1) throw new RequestError(400, "one image_url part per request");
      flat = await embedImageUrls(images);
      count = 1;
    } else {
      const list = typeof parsed.input === "string" ? [parsed.input] : parsed.input;
      if (!Array.isArray(list) || list.length === 0 || list.some((item) => typeof item !== "string")) throw new RequestError(400, "input must be a string or a list of strings");
      flat = parsed.modality === "image" ? await embedImageUrls(list) : await embedTexts(list);
      count = list.length;
    }
    const size = options.dimensions ?? DIMENSIONS;
    const data = Array.from({ length: count }, (_, index) => ({
      object: "embedding",
      index,
      embedding: Array.from(flat.subarray(index * DIMENSIONS, index * DIMENSIONS + Math.min(size, DIMENSIONS))),
    }));
    // Answered out of order, as the specification allows: `index` says which input each vector belongs to.
    send(response, 200, { object: "list", model: parsed.model, data: data.reverse(), usage: { prompt_tokens: 0, total_tokens: 0 } });
  }, "/v1");
}
