import type { DecodedImage } from "../../assets/decoded-media.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import type { Modality } from "../../core/database.ts";
import { checkVectors, chunks, InferenceServerClient, inferenceServerOptions } from "../inference-server-client.ts";
import type { ModelAdapter, ModelHandle } from "../model-adapter.ts";
import type { ModelManifest } from "../model-manifest.ts";
import { imageTensor, loadRemoteTokenizer, type RemoteTokenizer } from "../remote-encoder-inputs.ts";
import { capChars } from "./tfjs-universal-sentence-encoder.ts";

/** Open Inference Protocol datatypes this adapter sends and reads. */
type Datatype = "FP32" | "INT64" | "UINT8" | "BYTES";

type RequestTensor = { name: string; datatype: Datatype; shape: number[]; data: Float32Array | BigInt64Array | Uint8Array | string[] };

type TensorMetadata = { name: string; datatype: string; shape: number[] };
type ModelMetadata = { name: string; versions?: string[]; platform?: string; inputs?: TensorMetadata[]; outputs?: TensorMetadata[] };
type ResponseOutput = { name: string; datatype: string; shape: number[]; data?: number[]; parameters?: { binary_data_size?: number } };
type InferResponse = { model_name?: string; outputs?: ResponseOutput[]; error?: string };

/**
 * An encoder on a KServe v2 / Open Inference Protocol server (Triton, KServe, OpenVINO Model Server, MLServer):
 * POST /v2/models/{name}[/versions/{v}]/infer, one server model per tower (remote.models.text / .image).
 *
 * At load it asks /v2/health/ready, then each model's metadata (GET /v2/models/{name}), and refuses a manifest
 * whose tensor names, image size or vector size the server's model does not have. Tensors travel with the
 * binary tensor data extension by default (a JSON header, then little-endian tensor bytes; the header's length
 * in Inference-Header-Content-Length), or as JSON arrays with `remote.binary: false`.
 *
 * Text: with files.tokenizer (an export folder with tokenizer.json) the texts are tokenised here and sent as
 * INT64 ids (inputs.text, default input_ids) and mask (inputs.mask, when named); without one they go as a BYTES
 * tensor [N, 1] (inputs.text, default TEXT) for a server that tokenises. Images: resized and normalised as the
 * local CLIP adapter does, in the manifest's layout and datatype (inputs.image, default pixel_values).
 */
export const kserveV2EncoderAdapter: ModelAdapter = {
  embeds: ["TEXT", "IMAGE"],
  embedsFor: (model) => remoteModalities(model.manifest),
  async load(model, context) {
    const manifest = model.manifest;
    const remote = manifest.remote!;
    const client = new InferenceServerClient(inferenceServerOptions(manifest, context.logger));
    const route = (name: string) => `v2/models/${encodeURIComponent(name)}${remote.version ? `/versions/${encodeURIComponent(remote.version)}` : ""}`;
    const maxBatch = manifest.batch.maxBatchSize;
    const dimensions = manifest.output.dimensions;

    const ready = await client.request("GET", "v2/health/ready", undefined, [400, 503]);
    if (ready.status !== 200) {
      throw new TesseraError(ErrorCode.MODEL_ERROR, `model ${manifest.name}: the inference server is not ready (${ready.status})`, {
        model: manifest.name,
        status: ready.status,
        retryable: true,
      });
    }

    /** The server's model must take the inputs and give the output the manifest names. */
    async function describe(serverModel: string, inputs: string[], output: string) {
      const metadata = await client.json<ModelMetadata>("GET", route(serverModel));
      const mismatch = (message: string, details: Record<string, unknown> = {}) =>
        new TesseraError(ErrorCode.MODEL_ERROR, `model ${manifest.name}: the server's model ${serverModel} ${message}`, {
          model: manifest.name,
            serverModel,
          reason: "MANIFEST_MISMATCH",
          ...details,
        });
      const inputNames = (metadata.inputs ?? []).map((tensor) => tensor.name);
      const missingInputs = inputs.filter((name) => !inputNames.includes(name));
      if (missingInputs.length) throw mismatch(`has no input ${missingInputs.join(", ")} (it takes ${inputNames.join(", ") || "nothing"})`, { inputs: inputNames });
      const outputTensor = (metadata.outputs ?? []).find((tensor) => tensor.name === output);
      if (!outputTensor) throw mismatch(`has no output ${output} (it gives ${(metadata.outputs ?? []).map((tensor) => tensor.name).join(", ") || "nothing"})`);
      if (outputTensor.datatype !== "FP32") throw mismatch(`gives ${output} as ${outputTensor.datatype}; this adapter reads FP32`);
      const width = outputTensor.shape.at(-1);
      if (dimensions && width !== undefined && width > 0 && width !== dimensions) {
        throw mismatch(`gives ${width}-dimensional ${output}; the manifest says ${dimensions}`, { reason: "DIMENSION_MISMATCH", expected: dimensions, got: width });
      }
      return metadata;
    }

    /** One infer call; returns the output's rows. */
    async function infer(serverModel: string, tensors: RequestTensor[], output: string, rows: number): Promise<Float32Array[]> {
      const reply = remote.binary ? await inferBinary(serverModel, tensors, output) : await inferJson(serverModel, tensors, output);
      const tensor = reply.values;
      if (tensor.length % rows !== 0) throw client.protocolError(`output ${output} has ${tensor.length} values for ${rows} inputs`);
      const width = tensor.length / rows;
      const vectors = Array.from({ length: rows }, (_, row) => tensor.slice(row * width, (row + 1) * width));
      return checkVectors(manifest.name, vectors, { count: rows, dimensions });
    }

    async function inferJson(serverModel: string, tensors: RequestTensor[], output: string) {
      const payload = {
        inputs: tensors.map(({ name, datatype, shape, data }) => ({
          name,
          datatype,
          shape,
          data: data instanceof BigInt64Array ? Array.from(data, Number) : Array.isArray(data) ? data : Array.from(data),
        })),
        outputs: [{ name: output }],
      };
      const response = await client.json<InferResponse>("POST", `${route(serverModel)}/infer`, payload);
      const found = response.outputs?.find((candidate) => candidate.name === output);
      if (!found?.data) throw client.protocolError(`the answer has no output ${output}`);
      return { values: Float32Array.from(found.data.flat(Infinity as 1) as number[]) };
    }

    async function inferBinary(serverModel: string, tensors: RequestTensor[], output: string) {
      const bodies = tensors.map((tensor) => tensorBytes(tensor));
      const header = Buffer.from(
        JSON.stringify({
          inputs: tensors.map(({ name, datatype, shape }, index) => ({ name, datatype, shape, parameters: { binary_data_size: bodies[index]!.length } })),
          outputs: [{ name: output, parameters: { binary_data: true } }],
        }),
      );
      const reply = await client.request("POST", `${route(serverModel)}/infer`, {
        bytes: Buffer.concat([header, ...bodies]),
        headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(header.length) },
      });
      const headerLength = Number(reply.headers.get("inference-header-content-length") ?? reply.body.length);
      if (!Number.isInteger(headerLength) || headerLength > reply.body.length) throw client.protocolError(`a bad Inference-Header-Content-Length ${headerLength}`);
      const response = client.parseJson<InferResponse>(reply.body.subarray(0, headerLength), "infer");
      // Binary outputs follow the JSON header in the order of `outputs`, each binary_data_size bytes.
      let offset = headerLength;
      for (const candidate of response.outputs ?? []) {
        const size = candidate.parameters?.binary_data_size;
        if (candidate.name === output) {
          if (size === undefined) {
            if (!candidate.data) throw client.protocolError(`the answer has no data for output ${output}`);
            return { values: Float32Array.from(candidate.data.flat(Infinity as 1) as number[]) };
          }
          if (candidate.datatype !== "FP32") throw client.protocolError(`output ${output} came as ${candidate.datatype}, not FP32`);
          if (offset + size > reply.body.length || size % 4 !== 0) throw client.protocolError(`output ${output} claims ${size} bytes the answer does not hold`);
          // A copy: the body's offset need not be a multiple of 4.
          return { values: new Float32Array(new Uint8Array(reply.body.subarray(offset, offset + size)).buffer) };
        }
        offset += size ?? 0;
      }
      throw client.protocolError(`the answer has no output ${output}`);
    }

    const handle: ModelHandle = {};
    const textModel = remote.models.text;
    if (textModel) {
      const maxLength = manifest.preprocessing.text?.maxLength ?? 77;
      const tokenizerFolder = model.files.tokenizer;
      const tokenizer: RemoteTokenizer | undefined = tokenizerFolder ? await loadRemoteTokenizer(tokenizerFolder, maxLength) : undefined;
      const idsName = manifest.inputs.text ?? (tokenizer ? "input_ids" : "TEXT");
      const maskName = tokenizer ? manifest.inputs.mask : undefined;
      const output = manifest.outputs.text ?? "text_embeds";
      await describe(textModel, [idsName, ...(maskName ? [maskName] : [])], output);
      handle.countTokens = (text) => Math.min(maxLength, Math.max(1, Math.ceil(text.length / 4)));
      handle.embedText = async (texts) => {
        const vectors: Float32Array[] = [];
        for (const batch of chunks(texts.map((text) => capChars(text, maxLength)), maxBatch)) {
          let tensors: RequestTensor[];
          if (tokenizer) {
            const { ids, mask, shape } = tokenizer(batch);
            tensors = [{ name: idsName, datatype: "INT64", shape, data: ids }];
            if (maskName) tensors.push({ name: maskName, datatype: "INT64", shape, data: mask });
          } else {
            tensors = [{ name: idsName, datatype: "BYTES", shape: [batch.length, 1], data: batch }];
          }
          vectors.push(...(await infer(textModel, tensors, output, batch.length)));
        }
        return vectors;
      };
    }
    const imageModel = remote.models.image;
    if (imageModel) {
      const inputName = manifest.inputs.image ?? "pixel_values";
      const output = manifest.outputs.image ?? "image_embeds";
      const metadata = await describe(imageModel, [inputName], output);
      const size = imageSize(manifest, metadata.inputs!.find((tensor) => tensor.name === inputName)!);
      handle.imageInput = { ...size, resize: manifest.preprocessing.image?.resize ?? "cover-crop" };
      if (!remote.binary) {
        // JSON numbers for pixel tensors are ~5x the bytes and ~50x the encoding time, all on the event loop.
        context.logger.warn({ model: manifest.name }, "remote image encoder without the binary tensor extension: each batch is encoded as JSON numbers on the event loop");
      }
      handle.embedImages = async (images: DecodedImage[]) => {
        const vectors: Float32Array[] = [];
        for (const batch of chunks(images, maxBatch)) {
          const tensor = await imageTensor(batch, manifest, size);
          vectors.push(...(await infer(imageModel, [{ name: inputName, ...tensor }], output, batch.length)));
        }
        return vectors;
      };
    }
    context.logger.info({ model: manifest.name, server: client.server, text: textModel ?? null, image: imageModel ?? null, binary: remote.binary }, "remote encoder ready (KServe v2)");
    return handle;
  },
};

/** The modalities a remote encoder embeds: those the manifest names a server model for. */
export function remoteModalities(manifest: ModelManifest): Modality[] {
  const models = manifest.remote?.models ?? {};
  return [...(models.text ? (["TEXT"] as const) : []), ...(models.image ? (["IMAGE"] as const) : [])];
}

/** The image size: the manifest's, else the server model's input shape (NCHW [-1, 3, H, W] or NHWC [-1, H, W, 3]), else 224. */
function imageSize(manifest: ModelManifest, input: TensorMetadata): { width: number; height: number } {
  const given = manifest.preprocessing.image;
  const layout = given?.layout ?? "NCHW";
  const shape = input.shape;
  const [height, width] = layout === "NCHW" ? shape.slice(-2) : shape.slice(-3, -1);
  const known = (value: number | undefined) => (value !== undefined && value > 0 ? value : undefined);
  return { width: given?.width ?? known(width) ?? 224, height: given?.height ?? known(height) ?? 224 };
}

/** A tensor's binary form: little-endian, row major; BYTES as a 4-byte length before each element. */
function tensorBytes(tensor: RequestTensor): Buffer {
  const data = tensor.data;
  if (Array.isArray(data)) {
    return Buffer.concat(
      data.flatMap((text) => {
        const bytes = Buffer.from(text, "utf8");
        const length = Buffer.alloc(4);
        length.writeUInt32LE(bytes.length);
        return [length, bytes];
      }),
    );
  }
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
