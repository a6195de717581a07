// The thread side of TextEncoderThread (text-encoder-thread.ts): plain JavaScript, so it loads the same under
// tsx, vitest and a bundled build. It holds the text encoders whose work is CPU-bound JavaScript or a
// synchronous graph run (SentencePiece and BPE tokenisers, TF.js on WebAssembly, transformers.js' CLIP text
// tower), so that work never runs on the event loop of the process that serves HTTP. One encoder per
// description, loaded on first use; a failed load is forgotten, so a fixed file loads on the next call.
import fs from "node:fs/promises";
import path from "node:path";
import { parentPort } from "node:worker_threads";

const encoders = new Map();
// transformers.js resolves model ids against one global localModelPath: loads run one at a time.
let loads = Promise.resolve();

/** The Universal Sentence Encoder lite on TF.js (WebAssembly backend), capped to `maxLength` tokens per text. */
async function loadUniversalSentenceEncoder({ modelFile, vocabFile, maxLength }) {
  const [{ loadGraphModel }, { EmbeddingsModel }] = await Promise.all([import("@energetic-ai/core"), import("@energetic-ai/embeddings")]);
  const [graph, vocabulary] = await Promise.all([loadGraphModel(`file://${modelFile}`), fs.readFile(vocabFile, "utf8").then(JSON.parse)]);
  const encoder = new EmbeddingsModel({ model: graph, vocabulary });
  return {
    async embed(texts) {
      const capped = maxLength ? texts.map((text) => capTokens(encoder, text, maxLength)) : texts;
      return (await encoder.embed(capped)).map((vector) => Float32Array.from(vector));
    },
    dispose: () => graph.dispose(),
  };
}

function capTokens(encoder, text, maxTokens) {
  if (encoder.tokenizer.encode(text).length <= maxTokens) return text;
  // Words are at least one token each: keep cutting words until it fits.
  let words = text.split(/\s+/).slice(0, maxTokens);
  while (words.length > 1 && encoder.tokenizer.encode(words.join(" ")).length > maxTokens) {
    words = words.slice(0, Math.floor(words.length * 0.9));
  }
  return words.join(" ");
}

/** A Hugging Face CLIP/SigLIP export's tokenizer and text tower, through transformers.js (offline only). */
async function loadClipText({ folder, device, sessionOptions, maxLength, output }) {
  const hf = await import("@huggingface/transformers");
  hf.env.allowRemoteModels = false;
  hf.env.allowLocalModels = true;
  hf.env.localModelPath = `${path.dirname(folder)}/`;
  const options = { local_files_only: true, device, dtype: "fp32", session_options: sessionOptions };
  const id = path.basename(folder);
  const tokenizer = await hf.AutoTokenizer.from_pretrained(id, options);
  const model = await hf.CLIPTextModelWithProjection.from_pretrained(id, options);
  return {
    async embed(texts) {
      const inputs = tokenizer(texts, { padding: true, truncation: true, max_length: maxLength });
      const tensor = (await model(inputs))[output];
      if (!tensor) throw new Error(`the graph has no output ${output}`);
      if (tensor.dims.length !== 2 || tensor.dims[0] !== texts.length) {
        throw new Error(`output ${output} has shape [${tensor.dims.join(", ")}], expected [${texts.length}, dimensions]`);
      }
      const width = tensor.dims[1];
      return texts.map((_, row) => tensor.data.slice(row * width, (row + 1) * width));
    },
    dispose: () => model.dispose(),
  };
}

const loaders = { "universal-sentence-encoder": loadUniversalSentenceEncoder, "clip-text": loadClipText };

function encoder(spec) {
  const key = JSON.stringify(spec);
  let loading = encoders.get(key);
  if (!loading) {
    const load = loaders[spec.kind];
    loading = load ? loads.then(() => load(spec)) : Promise.reject(new Error(`no text encoder of kind ${spec.kind}`));
    loads = loading.catch(() => {});
    encoders.set(key, loading);
    loading.catch(() => encoders.delete(key));
  }
  return loading;
}

parentPort.on("message", async (message) => {
  if (message.type === "close") {
    const all = [...encoders.values()];
    encoders.clear();
    await Promise.all(all.map(async (loading) => (await loading.catch(() => null))?.dispose()));
    parentPort.postMessage({ type: "closed" });
    return;
  }
  const { id, spec, texts } = message;
  try {
    const loaded = await encoder(spec);
    if (texts === null) return parentPort.postMessage({ id, vectors: [] }); // a load, asked ahead of the first call
    const started = performance.now();
    const vectors = await loaded.embed(texts);
    parentPort.postMessage({ id, vectors, runMs: performance.now() - started }, vectors.map((vector) => vector.buffer));
  } catch (error) {
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
