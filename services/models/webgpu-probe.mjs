// Run by execution-provider.ts in a child process: can onnxruntime-node's WebGPU execution provider (Dawn over
// Vulkan) open a session and compute here? A child, because a GPU driver that crashes takes only the probe down.
// Prints one JSON line: { ok: true } or { ok: false, reason }.
import * as ort from "onnxruntime-node";

// Y = X + X on float32[1, 4] (opset 13, 106 bytes): the smallest graph that makes the provider compile a kernel.
const PROBE_MODEL =
  "CAgSFHRlc3NlcmEtd2ViZ3B1LXByb2JlOkYKEwoBWAoBWBIBWRoDYWRkIgNBZGQSBXByb2JlWhMKAVgSDgoMCAESCAoCCAEKAggEYhMKAVkSDgoMCAESCAoCCAEKAggEQgQKABAN";

try {
  const session = await ort.InferenceSession.create(Buffer.from(PROBE_MODEL, "base64"), { executionProviders: ["webgpu"] });
  const { Y } = await session.run({ X: new ort.Tensor("float32", Float32Array.from([1, 2, 3, 4]), [1, 4]) });
  const data = Array.from(Y.data);
  await session.release();
  const right = data.length === 4 && data.every((value, index) => value === 2 * (index + 1));
  console.log(JSON.stringify(right ? { ok: true } : { ok: false, reason: `the probe graph computed [${data.join(", ")}] instead of [2, 4, 6, 8]` }));
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  // onnxruntime's message starts with a source path; the reason is after the last "was false." or the whole line.
  const reason = (message.split("\n")[0] ?? message).replace(/^.*?was false\.\s*/, "").slice(0, 300);
  console.log(JSON.stringify({ ok: false, reason }));
}
