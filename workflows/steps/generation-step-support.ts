import { Prisma } from "../../services/core/database.ts";
import { checkGenerateRequest, type GenerateRequest } from "../../services/generation/generate-request.ts";
import { runGenerateTask, type GenerateOutput } from "../../services/generation/generate-task.ts";
import { UsageMeter } from "../../services/generation/usage-meter.ts";
import { chargeTokens } from "../../services/limits/token-budget.ts";
import type { StepContext } from "./step-type.ts";

/**
 * What the generate.* steps share: the same checks and the same task as the
 * `generate` mutation, with tokens streamed over runEvents and the token
 * usage stored on the step's row (StepRun.usage).
 */
export async function runGenerationStep(request: Omit<GenerateRequest, "attachments"> & { attachments?: string[] }, context: StepContext): Promise<GenerateOutput> {
  const { request: checked, assets } = await checkGenerateRequest(context.app, context.projectId, request);
  const usage = new UsageMeter();
  try {
    return await runGenerateTask(context.app, context.projectId, checked, assets, {
      usage,
      onToken: (token) => context.token(token),
      signal: context.signal,
      origin: { runId: context.runId, stepRunId: context.stepRunId, stepId: context.stepId },
    });
  } finally {
    await recordStepUsage(context, usage);
  }
}

/** Usage is kept for failed tries too: the tokens were spent either way. */
export async function recordStepUsage(context: Pick<StepContext, "app" | "stepRunId" | "projectId">, usage: UsageMeter, alreadyCharged = 0) {
  if (usage.calls.length === 0) return;
  // A resumed agent's meter holds the calls of its earlier jobs too, charged by those jobs.
  if (usage.total.totalTokens > alreadyCharged) await chargeTokens(context.app, context.projectId, usage.total.totalTokens - alreadyCharged);
  await context.app.db.stepRun.update({ where: { id: context.stepRunId }, data: { usage: usage.toJSON() as unknown as Prisma.InputJsonValue } }).catch(() => {});
}
