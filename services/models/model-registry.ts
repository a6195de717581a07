import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { ModelManifestSchema, type ModelManifest } from "./model-manifest.ts";

const require = createRequire(import.meta.url);

/** The manifests that ship with Tessera: models/*.yaml at the repository root. */
export const BUILT_IN_MANIFESTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../models");

/** A manifest with its files resolved to absolute paths, and whether they are all there. */
export type ResolvedModel = {
  manifest: ModelManifest;
  /** Same keys as manifest.files, absolute paths. */
  files: Record<string, string>;
  /** Files (or folders) that do not exist, or a remote server's unset URL variable; the model is served only when this is empty. */
  missing: string[];
  /** The YAML file it came from. */
  source: string;
};

export type ManifestProblem = { file: string; problems: string[] };

export type ModelRegistry = { models: ResolvedModel[]; problems: ManifestProblem[] };

/**
 * Reads every manifest in `manifestDirs` (later folders override earlier ones
 * by name, so MODELS_DIR can replace a built-in manifest), resolves its
 * files, and adds one model per discovered export folder.
 */
export function loadModelRegistry(manifestDirs: string[], modelsDir: string): ModelRegistry {
  const byName = new Map<string, ResolvedModel>();
  const problems: ManifestProblem[] = [];
  const explicit: Array<{ manifest: ModelManifest; file: string }> = [];
  for (const dir of [...new Set(manifestDirs.map((d) => path.resolve(d)))]) {
    if (!fs.existsSync(dir)) continue;
    for (const file of manifestFiles(dir)) {
      const parsed = parseManifestFile(file);
      if ("problems" in parsed) problems.push(parsed);
      else explicit.push({ manifest: parsed.manifest, file });
    }
  }
  for (const { manifest, file } of explicit) byName.set(manifest.name, resolveModel(manifest, modelsDir, file));
  // Discovered export folders come last and never replace a manifest written for them.
  const claimedDirs = new Set(explicit.map(({ manifest }) => manifest.files.dir).filter(Boolean));
  for (const { manifest, file } of explicit) {
    for (const found of expandDiscovered(manifest, modelsDir).slice(1)) {
      if (byName.has(found.name) || claimedDirs.has(found.files.dir)) continue;
      byName.set(found.name, resolveModel(found, modelsDir, file));
    }
  }
  return { models: [...byName.values()], problems };
}

/** `<dir>/*.yaml`, and `<dir>/<folder>/manifest.yaml` (what `tessera projector train` and `models pull` write). */
function manifestFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.isFile() && /\.ya?ml$/.test(entry.name)) files.push(path.join(dir, entry.name));
    if (entry.isDirectory()) {
      const nested = path.join(dir, entry.name, "manifest.yaml");
      if (fs.existsSync(nested)) files.push(nested);
    }
  }
  return files;
}

export function parseManifestFile(file: string): { manifest: ModelManifest } | ManifestProblem {
  let raw: unknown;
  try {
    raw = parseYaml(fs.readFileSync(file, "utf8"));
  } catch (error) {
    return { file, problems: [`not valid YAML: ${error instanceof Error ? error.message : String(error)}`] };
  }
  const parsed = ModelManifestSchema.safeParse(raw);
  if (!parsed.success) {
    return { file, problems: parsed.error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`) };
  }
  return { manifest: parsed.data };
}

/** A manifest with `discover` also serves every export folder in MODELS_DIR of a matching model_type. */
function expandDiscovered(manifest: ModelManifest, modelsDir: string): ModelManifest[] {
  if (!manifest.discover || !fs.existsSync(modelsDir)) return [manifest];
  const found: ModelManifest[] = [manifest];
  for (const folder of fs.readdirSync(modelsDir).sort()) {
    if (folder === manifest.files.dir) continue;
    const configFile = path.join(modelsDir, folder, "config.json");
    if (!fs.existsSync(configFile)) continue;
    try {
      const config = JSON.parse(fs.readFileSync(configFile, "utf8")) as { model_type?: string };
      if (config.model_type && manifest.discover.modelTypes.includes(config.model_type)) {
        const name = folder.toLowerCase().replace(/[^a-z0-9._-]+/g, "-");
        found.push({ ...manifest, name, files: { ...manifest.files, dir: folder } });
      }
    } catch {
      // Not an export folder we can read: leave it alone.
    }
  }
  return found;
}

function resolveModel(manifest: ModelManifest, modelsDir: string, source: string): ResolvedModel {
  const files: Record<string, string> = {};
  const missing: string[] = [];
  for (const [role, reference] of Object.entries(manifest.files)) {
    const resolved = resolveModelFile(reference, modelsDir);
    files[role] = resolved;
    if (!fs.existsSync(resolved)) missing.push(resolved);
  }
  // A remote encoder whose server URL comes from the environment is served only once that is set.
  const urlEnv = manifest.remote?.urlEnv;
  if (urlEnv && !process.env[urlEnv]) missing.push(`$${urlEnv} (the inference server's URL) is not set`);
  return { manifest: withExportDimensions(manifest, files.dir), files, missing, source };
}

/** A Hugging Face export states its output size (projection_dim) in config.json; the manifest need not repeat it. */
function withExportDimensions(manifest: ModelManifest, folder: string | undefined): ModelManifest {
  if (manifest.output.dimensions || !folder) return manifest;
  try {
    const config = JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")) as { projection_dim?: number };
    if (config.projection_dim) return { ...manifest, output: { ...manifest.output, dimensions: config.projection_dim } };
  } catch {
    // No readable config.json: dimensions stay unknown until the model runs.
  }
  return manifest;
}

/** `package:@scope/pkg/path/in/package` resolves inside node_modules; anything else is relative to MODELS_DIR. */
export function resolveModelFile(reference: string, modelsDir: string): string {
  if (!reference.startsWith("package:")) return path.resolve(modelsDir, reference);
  const spec = reference.slice("package:".length);
  const parts = spec.split("/");
  const packageName = spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
  const inside = parts.slice(spec.startsWith("@") ? 2 : 1).join("/");
  const root = packageRoot(packageName);
  return root ? path.join(root, inside) : path.join("node_modules", packageName, inside);
}

function packageRoot(packageName: string): string | undefined {
  let entry: string;
  try {
    entry = require.resolve(packageName);
  } catch {
    const candidate = require.resolve.paths(packageName)?.map((dir) => path.join(dir, packageName)).find((dir) => fs.existsSync(dir));
    return candidate;
  }
  // Walk up from the entry file to the folder whose package.json names the package.
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, "utf8")).name === packageName) return dir;
  }
  return undefined;
}

/** `clip-*,silero-vad` style name globs: `*` any run of characters, `?` one. */
export function matchesAnyGlob(name: string, globs: string[]): boolean {
  return globs.some((glob) => {
    const pattern = glob.trim().replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp(`^${pattern}$`).test(name);
  });
}
