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

// Calls wait here in arrival order; one graph computes at a time.
const queue = [];
let draining = false;

parentPort.on("message", async (message) => {
  if (message.type === "close") {
    const all = [...sessions.values()];
    sessions.clear();
    await Promise.all(all.map(async (loading) => (await loading.catch(() => null))?.release()));
    parentPort.postMessage({ type: "closed" });
    return;
  }
  queue.push(message);
  if (!draining) {
    draining = true;
    setImmediate(drain);
  }
});

async function drain() {
  while (queue.length) {
    await runTogether(takeCalls());
    // A turn of the event loop: the calls that arrived while the graph computed are queued before the next is taken.
    await new Promise((resolve) => setImmediate(resolve));
  }
  draining = false;
}

/**
 * The next call, and the calls queued behind it that may run with it as one batch (`mergeUpTo`: the caller's
 * largest batch): same graph, same outputs, one input each of the same item shape. So a batch that queued
 * while another computed, in any number of calls, is computed as one as soon as the graph is free.
 */
function takeCalls() {
  const first = queue.shift();
  const calls = [first];
  let rows = batchRows(first);
  while (first.mergeUpTo && queue.length && mergeable(first, queue[0]) && rows + batchRows(queue[0]) <= first.mergeUpTo) {
    rows += batchRows(queue[0]);
    calls.push(queue.shift());
  }
  return calls;
}

// Rows of a call's (first) input: its batch. A graph without inputs, or with a scalar one, counts as one.
const batchRows = (call) => Object.values(call.feeds)[0]?.dims[0] ?? 1;
const itemShape = (call) => Object.entries(call.feeds).map(([name, feed]) => `${name}:${feed.type}:${feed.dims.slice(1).join("x")}`).join();

function mergeable(first, next) {
  return (
    next.mergeUpTo === first.mergeUpTo &&
    next.file === first.file &&
    JSON.stringify(next.outputs) === JSON.stringify(first.outputs) &&
    Object.keys(first.feeds).length === 1 &&
    itemShape(next) === itemShape(first)
  );
}

/** Runs the calls as one batch (their inputs end to end) and answers each with its own rows of every output. */
async function runTogether(calls) {
  const [first] = calls;
  try {
    const loaded = await session(first.file);
    const inputs = {};
    for (const [name, feed] of Object.entries(first.feeds)) inputs[name] = new ort.Tensor(feed.type, joined(calls, name), [calls.reduce((sum, call) => sum + call.feeds[name].dims[0], 0), ...feed.dims.slice(1)]);
    const started = performance.now();
    const results = await loaded.run(inputs);
    const runMs = performance.now() - started;
    let row = 0;
    for (const [index, call] of calls.entries()) {
      const rows = batchRows(call);
      const reply = {};
      // The input buffers go back with the answer, for the caller's next batch: a fresh buffer of a batch's size
      // costs the kernel's page faults and zeroing on every batch.
      const returned = [...new Set(Object.values(call.feeds).map((feed) => feed.data.buffer))];
      const transfer = [...returned];
      for (const name of call.outputs ?? Object.keys(results)) {
        const tensor = results[name];
        if (!tensor) continue;
        // A copy the thread owns outright, so it can be moved to the caller without a second copy: the whole
        // output for a call that ran alone, else this call's rows.
        if (calls.length === 1) {
          const data = tensor.data.slice();
          reply[name] = { type: tensor.type, data, dims: [...tensor.dims] };
          transfer.push(data.buffer);
          continue;
        }
        const rowSize = tensor.dims.slice(1).reduce((product, side) => product * side, 1);
        const data = tensor.data.slice(row * rowSize, (row + rows) * rowSize);
        reply[name] = { type: tensor.type, data, dims: [rows, ...tensor.dims.slice(1)] };
        transfer.push(data.buffer);
      }
      row += rows;
      // The run's time and size once, with the first call: busy time and batch sizes count each run once.
      const ran = index === 0 ? { runMs, file: first.file, batch: calls.reduce((sum, each) => sum + batchRows(each), 0) } : {};
      parentPort.postMessage({ id: call.id, outputs: reply, returned, ...ran }, transfer);
    }
  } catch (error) {
    for (const call of calls) parentPort.postMessage({ id: call.id, error: error instanceof Error ? error.message : String(error) });
  }
}

/** The buffer the last joined input used: kept for the next (a run is over before the next one joins). */
let joinedBuffer = new ArrayBuffer(0);

/** One input of the calls, end to end: the first call's own array when it runs alone. */
function joined(calls, name) {
  if (calls.length === 1) return calls[0].feeds[name].data;
  const parts = calls.map((call) => call.feeds[name].data);
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const bytes = length * parts[0].BYTES_PER_ELEMENT;
  if (joinedBuffer.byteLength < bytes) joinedBuffer = new ArrayBuffer(bytes);
  const all = new parts[0].constructor(joinedBuffer, 0, length);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}
