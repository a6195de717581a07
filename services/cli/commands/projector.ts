import path from "node:path";
import type { Command } from "commander";
import { SingleBar, Presets } from "cli-progress";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { DEFAULT_PROJECTOR_OPTIONS, readPairsFile, trainProjector, writeProjector } from "../../../training/projector/train-projector.ts";

type TrainOptions = {
  pairs: string;
  from: string;
  to: string;
  name?: string;
  description?: string;
  for?: string;
  out?: string;
  kind: string;
  loss: string;
  steps: string;
  batchSize: string;
  learningRate: string;
};

function positiveNumber(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new TesseraError(ErrorCode.BAD_USER_INPUT, `${flag} must be a positive number, got ${value}`);
  return number;
}

/**
 * `tessera projector train`: aligns one encoder's vectors with another space
 * from paired vectors (the first training stage of LLaVA-style models) and
 * writes an ONNX projector plus its model manifest.
 */
export function registerProjectorCommands(program: Command) {
  const projector = program.command("projector").description("train projectors between embedding spaces");
  projector
    .command("train")
    .description("learn a projector from paired vectors; writes <out>/projector.onnx and <out>/manifest.yaml")
    .requiredOption("--pairs <file>", 'JSONL, one pair a line: {"from": [...], "to": [...], "key"?: "same-thing id"}')
    .requiredOption("--from <space>", "the space the `from` vectors live in (e.g. audio)")
    .requiredOption("--to <space>", "the space to project into (e.g. image-text)")
    .option("--name <name>", "model name in the manifest (default <from>-to-<to>-projector)")
    .option("--description <text>", "description in the manifest")
    .option("--for <model>", "the model whose space the projector writes into; it is applied only while that model serves the space")
    .option("--out <dir>", "output folder (default $MODELS_DIR/<name>)")
    .option("--kind <kind>", "linear, mlp, or prototype (one prototype per pair key, no gradient steps)", DEFAULT_PROJECTOR_OPTIONS.kind)
    .option("--loss <loss>", "infonce or mse-cosine", DEFAULT_PROJECTOR_OPTIONS.loss)
    .option("--steps <n>", "optimizer steps", String(DEFAULT_PROJECTOR_OPTIONS.steps))
    .option("--batch-size <n>", "pairs per step", String(DEFAULT_PROJECTOR_OPTIONS.batchSize))
    .option("--learning-rate <x>", "Adam learning rate", String(DEFAULT_PROJECTOR_OPTIONS.learningRate))
    .action(async (options: TrainOptions) => {
      if (options.kind !== "linear" && options.kind !== "mlp" && options.kind !== "prototype") {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `--kind must be linear, mlp or prototype, got ${options.kind}`);
      }
      if (options.loss !== "infonce" && options.loss !== "mse-cosine") {
        throw new TesseraError(ErrorCode.BAD_USER_INPUT, `--loss must be infonce or mse-cosine, got ${options.loss}`);
      }
      const steps = Math.round(positiveNumber(options.steps, "--steps"));
      const batchSize = Math.round(positiveNumber(options.batchSize, "--batch-size"));
      const learningRate = positiveNumber(options.learningRate, "--learning-rate");
      const name = options.name ?? `${options.from}-to-${options.to}-projector`;
      const modelsDir = path.resolve(process.env.MODELS_DIR ?? "models");
      const outDir = path.resolve(options.out ?? path.join(modelsDir, name));

      const pairs = await readPairsFile(options.pairs);
      console.error(`${pairs.length} pairs, ${pairs[0]!.from.length} -> ${pairs[0]!.to.length} dimensions`);
      const bar = new SingleBar({ format: "training |{bar}| {value}/{total} steps, loss {loss}" }, Presets.shades_classic);
      bar.start(steps, 0, { loss: "-" });
      const { model, report } = await trainProjector(pairs, {
        kind: options.kind,
        loss: options.loss,
        steps,
        batchSize,
        learningRate,
        onProgress: (step, loss) => bar.update(step + 1, { loss: loss.toFixed(4) }),
      });
      bar.update(steps);
      bar.stop();
      const written = await writeProjector(model, report, { outDir, name, from: options.from, to: options.to, modelsDir, description: options.description, forModel: options.for });
      console.error(
        `validation: mean cosine ${report.validationMeanCosine.toFixed(3)}, recall@1 ${report.validationRecallAt1.toFixed(3)} (${report.validationPairs} pairs)`,
      );
      console.log(JSON.stringify({ projector: written.graphPath, manifest: written.manifestPath, ...report }));
    });
}
