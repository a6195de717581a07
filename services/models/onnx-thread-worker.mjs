// The thread side of OnnxThread (onnx-thread.ts): plain JavaScript, so it loads
// the same under tsx, vitest and a bundled build. One onnxruntime session per
// graph file; a session that fails to load is forgotten, so a fixed file loads
// on the next call.
import { parentPort, workerData } from "node:worker_threads";
import * as ort from "onnxruntime-node";

// Session options come whole from the caller (provider, optimisation, threads, spinning: sessionTuning).
const { options } = workerData;
const sessions = new Map();

function session(file) {
  let loading = sessions.get(file);
  if (!loading) {
    loading = ort.InferenceSession.create(file, options);
    sessions.set(file, loading);
    loading.catch(() => sessions.delete(file));
  }
  return loading;
}

parentPort.on("message", async (message) => {
  if (message.type === "close") {
    const all = [...sessions.values()];
    sessions.clear();
    await Promise.all(all.map(async (loading) => (await loading.catch(() => null))?.release()));
    parentPort.postMessage({ type: "closed" });
    return;
  }
  const { id, file, feeds, outputs } = message;
  try {
    const loaded = await session(file);
    const inputs = {};
    for (const [name, feed] of Object.entries(feeds)) inputs[name] = new ort.Tensor(feed.type, feed.data, feed.dims);
    const started = performance.now();
    const results = await loaded.run(inputs);
    const runMs = performance.now() - started;
    const reply = {};
    // The input buffers go back with the answer, for the caller's next batch: a fresh buffer of a batch's size
    // costs the kernel's page faults and zeroing on every batch.
    const returned = [...new Set(Object.values(feeds).map((feed) => feed.data.buffer))];
    const transfer = [...returned];
    for (const name of outputs ?? Object.keys(results)) {
      const tensor = results[name];
      if (!tensor) continue;
      // A copy the thread owns outright, so it can be moved to the caller without a second copy.
      const data = tensor.data.slice();
      reply[name] = { type: tensor.type, data, dims: [...tensor.dims] };
      transfer.push(data.buffer);
    }
    parentPort.postMessage({ id, outputs: reply, returned, runMs }, transfer);
  } catch (error) {
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
