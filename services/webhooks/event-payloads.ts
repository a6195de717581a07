import type { Database } from "../core/database.ts";
import type { ProjectEventType } from "../queue/project-events.ts";

/** What one delivery's body says: the event, and the row it is about as it was when the event was fanned out. */
export type EventPayload = {
  id: string;
  type: ProjectEventType;
  createdAt: string;
  projectId: string;
  data: Record<string, unknown>;
};

/**
 * Reads the run, job or asset an event is about: its project (the event goes
 * to that project's subscriptions only) and what a receiver needs to act
 * without calling back. Null when the row is gone.
 */
export async function describeEvent(
  db: Database,
  event: { eventId: string; type: ProjectEventType; subjectId: string; at: string },
): Promise<EventPayload | null> {
  const base = { id: event.eventId, type: event.type, createdAt: event.at };
  if (event.type.startsWith("run.")) {
    const run = await db.run.findUnique({
      where: { id: event.subjectId },
      include: { workflowVersion: { select: { number: true, workflow: { select: { slug: true } } } } },
    });
    if (!run) return null;
    const waiting =
      run.status === "WAITING" ? await db.stepRun.findMany({ where: { runId: run.id, status: "WAITING" }, select: { key: true, input: true } }) : [];
    return {
      ...base,
      projectId: run.projectId,
      data: {
        run: {
          id: run.id,
          workflow: run.workflowVersion.workflow.slug,
          version: run.workflowVersion.number,
          status: run.status,
          output: run.output,
          error: run.error,
          parentStepRunId: run.parentStepRunId,
          createdAt: run.createdAt.toISOString(),
          finishedAt: run.finishedAt?.toISOString() ?? null,
          ...(waiting.length ? { waiting: waiting.map((step) => ({ step: step.key, prompt: (step.input as { prompt?: string } | null)?.prompt ?? null })) } : {}),
        },
      },
    };
  }
  if (event.type.startsWith("job.")) {
    const job = await db.job.findUnique({ where: { id: event.subjectId } });
    if (!job) return null;
    return {
      ...base,
      projectId: job.projectId,
      data: {
        job: {
          id: job.id,
          kind: job.kind,
          status: job.status,
          assetId: job.assetId,
          output: job.output,
          error: job.error,
          attempts: job.attempts,
          createdAt: job.createdAt.toISOString(),
          finishedAt: job.finishedAt?.toISOString() ?? null,
        },
      },
    };
  }
  const asset = await db.asset.findUnique({ where: { id: event.subjectId } });
  if (!asset) return null;
  return {
    ...base,
    projectId: asset.projectId,
    data: {
      asset: {
        id: asset.id,
        modality: asset.modality,
        status: asset.status,
        mimeType: asset.mimeType,
        byteSize: asset.byteSize,
        filename: asset.filename,
        tags: asset.tags,
        metadata: asset.metadata,
        createdAt: asset.createdAt.toISOString(),
      },
    },
  };
}
