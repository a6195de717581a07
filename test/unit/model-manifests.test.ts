import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { modelAdapters } from "../../services/models/adapters/index.ts";
import { BUILT_IN_MANIFESTS_DIR, loadModelRegistry, matchesAnyGlob, parseManifestFile, resolveModelFile } from "../../services/models/model-registry.ts";

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

  it("a CLIP export folder is discovered, unless a manifest already names it", async () => {
    const modelsDir = await fsp.mkdtemp(path.join(os.tmpdir(), "tessera-discover-"));
    try {
      for (const folder of ["found", "mine"]) {
        await fsp.mkdir(path.join(modelsDir, folder));
        await fsp.writeFile(path.join(modelsDir, folder, "config.json"), JSON.stringify({ model_type: "clip", projection_dim: 8 }));
      }
      const clipManifest = await fsp.readFile(path.join(BUILT_IN_MANIFESTS_DIR, "clip.yaml"), "utf8");
      await fsp.writeFile(
        path.join(modelsDir, "my-clip.yaml"),
        clipManifest.replace("name: clip", "name: my-clip").replace("dir: clip", "dir: mine").replace("priority: 10", "priority: 3").replace(/discover:.*\n/, ""),
      );
      const registry = loadModelRegistry([BUILT_IN_MANIFESTS_DIR, modelsDir], modelsDir);
      const byName = new Map(registry.models.map((model) => [model.manifest.name, model]));
      expect(byName.get("found")!.manifest).toMatchObject({ files: { dir: "found" }, priority: 10, output: { dimensions: 8 } });
      expect(byName.get("my-clip")!.manifest).toMatchObject({ files: { dir: "mine" }, priority: 3 });
      expect(byName.has("mine")).toBe(false);
    } finally {
      await fsp.rm(modelsDir, { recursive: true, force: true });
    }
  });

  it("matches --models globs", () => {
    expect(matchesAnyGlob("clip-vit-b32", ["clip-*"])).toBe(true);
    expect(matchesAnyGlob("emoji-clip", ["clip-*", "silero-?ad"])).toBe(false);
    expect(matchesAnyGlob("silero-vad", ["clip-*", "silero-?ad"])).toBe(true);
  });
});
