import path from "node:path";
import { Presets, SingleBar } from "cli-progress";
import type { Command } from "commander";
import { loadConfig } from "../../core/config.ts";
import { createLogger } from "../../core/logger.ts";
import { createModelRuntime } from "../../models/local-model-runtime.ts";
import { pullExport } from "../../models/model-hub.ts";

export function registerModelsCommands(program: Command) {
  const models = program.command("models").description("the model registry (models/*.yaml and MODELS_DIR)");

  models
    .command("list")
    .description("every manifest, whether its files are present, and what it serves")
    .option("--json", "print JSON")
    .action((options: { json?: boolean }) => {
      const config = loadConfig();
      const runtime = createModelRuntime({ modelsDir: config.modelsDir, logger: createLogger("warn", "models") });
      const rows = runtime.describe();
      const problems = runtime.manifestProblems();
      if (options.json) {
        console.log(JSON.stringify({ models: rows, invalidManifests: problems }, null, 2));
        return;
      }
      console.log(["NAME", "TASK", "MODALITY", "SPACE", "DIMS", "DEVICE", "STATUS"].join("\t"));
      for (const row of rows) {
        const status = row.served ? "served" : row.missing.length ? `missing ${row.missing.map((file) => path.relative(process.cwd(), file)).join(", ")}` : "not served here";
        console.log([row.name, row.task, row.modality, row.space ?? "-", row.dimensions ?? "-", row.device, status].join("\t"));
      }
      for (const problem of problems) console.error(`invalid manifest ${problem.file}: ${problem.problems.join("; ")}`);
    });

  models
    .command("pull <repo-id>")
    .description("download a Hugging Face ONNX export into MODELS_DIR (on a machine with internet)")
    .option("--hub <url>", "hub base URL (env HF_ENDPOINT)", process.env.HF_ENDPOINT ?? "https://huggingface.co")
    .option("--revision <rev>", "branch, tag or commit", "main")
    .option("--out <dir>", "target folder (default $MODELS_DIR/<repo name, lowercase>)")
    .option("--include <globs>", "comma-separated repository paths to fetch (default: configs and fp32 ONNX graphs)")
    .action(async (repoId: string, options: { hub: string; revision: string; out?: string; include?: string }) => {
      const config = loadConfig();
      const outDir = path.resolve(options.out ?? path.join(config.modelsDir, repoId.split("/").pop()!.toLowerCase()));
      const bar = new SingleBar({ format: "{file} |{bar}| {value} bytes", stopOnComplete: false }, Presets.shades_classic);
      let received = 0;
      bar.start(0, 0, { file: repoId });
      try {
        const result = await pullExport({
          repoId,
          hubUrl: options.hub,
          revision: options.revision,
          outDir,
          include: options.include?.split(",").map((glob) => glob.trim()).filter(Boolean),
          token: process.env.HF_TOKEN,
          onBytes: (bytes) => {
            received += bytes;
            bar.setTotal(received);
            bar.update(received);
          },
          onFile: (file) => bar.update(received, { file }),
        });
        bar.stop();
        console.error(`${result.files.length} files, ${result.bytes} bytes -> ${result.outDir}`);
        console.log(result.outDir);
      } catch (error) {
        bar.stop();
        throw error;
      }
    });
}
