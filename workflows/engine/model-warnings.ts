import { GenerationConfigError, loadGenerationConfig, type GenerationConfig } from "../../services/generation/generation-config.ts";
import { defaultAliasFor, type GenerateTask } from "../../services/generation/generate-request.ts";
import { aliasSetupHint } from "../../services/generation/model-setup-hint.ts";
import type { ModelRuntime } from "../../services/models/model-runtime.ts";
import { hasExpression } from "../dsl/expression.ts";
import { VQA_DEFAULT_ALIAS } from "../steps/generate-vqa-step.ts";
import type { WorkflowDefinition } from "../dsl/workflow-schema.ts";

/** The generation task behind each step type that calls a model alias. */
const TASK_OF_STEP: Record<string, GenerateTask> = {
  "generate.text": "TEXT",
  "generate.caption": "CAPTION",
  "generate.vqa": "CAPTION",
  "generate.speech": "SPEECH",
  "generate.transcript": "TRANSCRIPT",
  "generate.image": "IMAGE",
  agent: "TEXT",
};

type StepLike = { id?: string; uses: string; with?: Record<string, unknown> };

/**
 * Steps whose model alias this deployment does not configure (now: the
 * configuration is read as a run would read it), each with how to configure
 * it. Publishing still succeeds: a run of such a step fails with
 * MODEL_NOT_FOUND until the alias exists. An alias given by an expression is
 * only known at run time and is not judged.
 */
export function modelWarnings(app: { models: Pick<ModelRuntime, "list"> }, definition: WorkflowDefinition, env: NodeJS.ProcessEnv = process.env): string[] {
  let config: GenerationConfig;
  try {
    config = loadGenerationConfig(env);
  } catch (error) {
    if (error instanceof GenerationConfigError) return [`the model configuration is invalid, so no generation step can run: ${error.problems.join("; ")}`];
    throw error;
  }
  const has = (alias: string) => alias in config.models;
  const localTranscription = () => app.models.list().some((model) => model.task === "transcribe");
  const warnings: string[] = [];
  for (const { step, label } of stepsOf(definition)) {
    const task = TASK_OF_STEP[step.uses];
    if (!task) continue;
    const model = step.with?.model;
    if (model !== undefined && (typeof model !== "string" || hasExpression(model))) continue;
    if (model === undefined && task === "TRANSCRIPT" && localTranscription()) continue;
    const alias = model ?? (step.uses === "agent" ? "llm.default" : step.uses === "generate.vqa" ? VQA_DEFAULT_ALIAS : defaultAliasFor(task, task === "CAPTION", has));
    if (has(alias)) continue;
    warnings.push(`step "${label}" (${step.uses}) needs model alias "${alias}", which is not configured; its runs fail until it is: ${aliasSetupHint(alias)}`);
  }
  return warnings;
}

/** Every step, a map's template included (labelled `<map>.step`). */
function* stepsOf(definition: WorkflowDefinition): Generator<{ step: StepLike; label: string }> {
  for (const step of definition.steps as StepLike[]) {
    yield { step, label: step.id ?? step.uses };
    const template = step.with?.step;
    if (step.uses === "map" && template && typeof template === "object" && typeof (template as StepLike).uses === "string") {
      yield { step: template as StepLike, label: `${step.id}.step` };
    }
  }
}
