import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { modelAdapters } from "../../services/worker/models/adapters/index.ts";
import { BUILT_IN_MANIFESTS_DIR, loadModelRegistry, matchesAnyGlob, parseManifestFile, resolveModelFile } from "../../services/worker/models/model-registry.ts";

describe("the manifests in models/", () => {
  const files = fs.readdirSync(BUILT_IN_MANIFESTS_DIR).filter((file) => file.endsWith(".yaml"));

  it.each(files)("%s is valid and names a known adapter", (file) => {
    const parsed = parseManifestFile(path.join(BUILT_IN_MANIFESTS_DIR, file));
    expect(parsed).not.toHaveProperty("problems");
    if ("manifest" in parsed) expect(Object.keys(modelAdapters)).toContain(parsed.manifest.adapter);
  });

  it("the weights that ship in packages resolve to files that exist", () => {
    const registry = loadModelRegistry([BUILT_IN_MANIFESTS_DIR], "/nonexistent-models-dir");
    const packaged = registry.models.filter((model) => Object.values(model.manifest.files).some((file) => file.startsWith("package:")));
    expect(packaged.map((model) => model.manifest.name).sort()).toEqual(["openwakeword-audio", "pp-ocr", "silero-vad", "use-lite-sentence"]);
    for (const model of packaged) expect(model.missing).toEqual([]);
    // Without an export folder the CLIP manifest is known but not served.
    expect(registry.models.find((model) => model.manifest.name === "clip")!.missing).toHaveLength(1);
  });

  it("resolves package: paths inside node_modules and other paths under MODELS_DIR", () => {
    expect(resolveModelFile("package:@ricky0123/vad-web/dist/silero_vad_v5.onnx", "/m")).toMatch(/node_modules\/@ricky0123\/vad-web\/dist\/silero_vad_v5\.onnx$/);
    expect(resolveModelFile("clip", "/m")).toBe("/m/clip");
  });

  it("matches --models globs", () => {
    expect(matchesAnyGlob("clip-vit-b32", ["clip-*"])).toBe(true);
    expect(matchesAnyGlob("emoji-clip", ["clip-*", "silero-?ad"])).toBe(false);
    expect(matchesAnyGlob("silero-vad", ["clip-*", "silero-?ad"])).toBe(true);
  });
});
