/**
 * Compose's `triton` profile, its model repository (infra/triton) and the manifest that uses it
 * (models/clip-triton.yaml) must agree: there is no Docker engine here, so the files are checked against each
 * other: the service serves the repository, each model the manifest names has a config whose tensor names, types
 * and sizes are the ones the manifest sends and expects.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ModelManifestSchema } from "../../services/models/model-manifest.ts";
import { BUILT_IN_MANIFESTS_DIR, parseManifestFile } from "../../services/models/model-registry.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

type Service = { image?: string; command?: string[]; volumes?: string[]; profiles?: string[]; healthcheck?: { test?: string[] }; deploy?: unknown };
const compose = parse(read("docker-compose.yml"), { merge: true }) as { services: Record<string, Service> };

type TensorConfig = { name: string; dataType: string; dims: number[] };
type TritonConfig = { name: string; backend: string; maxBatchSize: number; inputs: TensorConfig[]; outputs: TensorConfig[] };

/** The part of Triton's model configuration (protobuf text format) the repository uses. */
function parseTritonConfig(text: string): TritonConfig {
  const body = text.replace(/#.*$/gm, "");
  const scalar = (key: string) => new RegExp(`^\\s*${key}:\\s*"?([^"\\n]+?)"?\\s*$`, "m").exec(body)?.[1];
  const tensors = (section: string) => {
    const list = new RegExp(`^\\s*${section}\\s*\\[([\\s\\S]*?)^\\s*\\]`, "m").exec(body)?.[1] ?? "";
    return [...list.matchAll(/\{([^}]*)\}/g)].map(([, entry]) => ({
      name: /name:\s*"([^"]+)"/.exec(entry!)![1]!,
      dataType: /data_type:\s*(\w+)/.exec(entry!)![1]!,
      dims: /dims:\s*\[([^\]]*)\]/.exec(entry!)![1]!.split(",").map((value) => Number(value.trim())),
    }));
  };
  return { name: scalar("name")!, backend: scalar("backend")!, maxBatchSize: Number(scalar("max_batch_size")), inputs: tensors("input"), outputs: tensors("output") };
}

const parsed = parseManifestFile(path.join(BUILT_IN_MANIFESTS_DIR, "clip-triton.yaml"));
if (!("manifest" in parsed)) throw new Error(`models/clip-triton.yaml: ${parsed.problems.join("; ")}`);
const manifest = parsed.manifest;
const repository = "infra/triton/model_repository";

describe("compose's triton profile", () => {
  const triton = compose.services.triton!;

  it("runs Triton on the repository, only under the triton profile, with a readiness healthcheck", () => {
    expect(triton.profiles).toEqual(["triton"]);
    expect(triton.image).toMatch(/^nvcr\.io\/nvidia\/tritonserver:\d\d\.\d\d-py3$/);
    expect(triton.command).toContain("--model-repository=/models");
    expect(triton.command).toContain("--http-port=8000");
    expect(triton.volumes).toContain(`./${repository}:/models:ro`);
    expect(triton.healthcheck?.test?.join(" ")).toContain("http://localhost:8000/v2/health/ready");
  });

  it("is what the manifest calls: a KServe v2 encoder whose URL variable compose documents as http://triton:8000", () => {
    expect(manifest).toMatchObject({ format: "remote", adapter: "kserve-v2-encoder", task: "embed", output: { space: "image-text" } });
    expect(manifest.remote!.urlEnv).toBe("TRITON_URL");
    expect(read("docker-compose.yml")).toContain("TRITON_URL=http://triton:8000");
    expect(read(".env.example")).toMatch(/triton profile: http:\/\/triton:8000[^\n]*\n# TRITON_URL=/);
    expect(read("README.md")).toContain("TRITON_URL=http://triton:8000");
    // Outranks the local CLIP, so with Triton configured the space is computed there.
    const local = parseManifestFile(path.join(BUILT_IN_MANIFESTS_DIR, "clip.yaml"));
    expect("manifest" in local && manifest.priority > local.manifest.priority).toBe(true);
  });

  it.each(Object.entries(manifest.remote!.models))("the %s model %s has a config with the manifest's tensors", (tower, model) => {
    const file = path.join(repository, model!, "config.pbtxt");
    expect(existsSync(path.join(ROOT, file)), file).toBe(true);
    const config = parseTritonConfig(read(file));
    expect(config).toMatchObject({ name: model, backend: "onnxruntime" });
    expect(config.maxBatchSize).toBeGreaterThanOrEqual(manifest.batch.maxBatchSize);
    const output = config.outputs.find((tensor) => tensor.name === manifest.outputs[tower]);
    expect(output, `output ${manifest.outputs[tower]}`).toMatchObject({ dataType: "TYPE_FP32", dims: [manifest.output.dimensions] });
    const inputs = Object.fromEntries(config.inputs.map((tensor) => [tensor.name, tensor]));
    if (tower === "text") {
      expect(Object.keys(inputs).sort()).toEqual([manifest.inputs.text, manifest.inputs.mask].sort());
      for (const name of [manifest.inputs.text!, manifest.inputs.mask!]) expect(inputs[name]).toMatchObject({ dataType: "TYPE_INT64", dims: [-1] });
    } else {
      const image = manifest.preprocessing.image!;
      expect(image).toMatchObject({ layout: "NCHW", datatype: "FP32" });
      expect(Object.keys(inputs)).toEqual([manifest.inputs.image]);
      expect(inputs[manifest.inputs.image!]).toMatchObject({ dataType: "TYPE_FP32", dims: [3, image.height, image.width] });
    }
  });

  it("keeps the model graphs out of git: prepare-clip.sh copies them into ignored version folders", () => {
    const script = read("infra/triton/prepare-clip.sh");
    for (const model of Object.values(manifest.remote!.models)) {
      const graph = path.join(repository, model!, "1", "model.onnx");
      expect(execFileSync("git", ["check-ignore", graph], { cwd: ROOT, encoding: "utf8" }).trim()).toBe(graph);
    }
    expect(script).toContain('cp "$graph" "$repository/clip_$tower/1/model.onnx"');
    expect(Object.values(manifest.remote!.models).sort()).toEqual(["clip_text", "clip_vision"]);
  });
});

describe("the README's remote encoder example", () => {
  it("is a valid manifest for the OpenAI embeddings adapter", () => {
    const block = /```yaml\n(# \$MODELS_DIR\/infinity-clip\.yaml[\s\S]*?)```/.exec(read("README.md"))?.[1];
    expect(block).toBeDefined();
    const example = ModelManifestSchema.parse(parse(block!));
    expect(example).toMatchObject({ name: "infinity-clip", adapter: "openai-embeddings-encoder", remote: { urlEnv: "INFINITY_URL", imageRequest: "infinity" } });
  });
});
