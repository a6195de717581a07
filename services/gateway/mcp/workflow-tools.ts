import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { CancelledNotificationSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { AppContext } from "../../app/app-context.ts";
import type { Project } from "../../core/database.ts";
import { ErrorCode, TesseraError } from "../../core/errors.ts";
import { runInputSchema } from "../../../workflows/dsl/input-types.ts";
import type { WorkflowDefinition } from "../../../workflows/dsl/workflow-schema.ts";
import { RunEventType, TERMINAL_RUN_STATUSES } from "../../../workflows/engine/run-events.ts";
import { cancelRun, startRun } from "../../../workflows/engine/run-service.ts";
import { watchRun } from "../../../workflows/engine/watch-run.ts";

/** Most opt-in workflows offered as tools (newest first). */
const MAX_WORKFLOW_TOOLS = 200;
/** A tool call waits this long for its run; past it, the answer says the run goes on and how to follow it. */
const WAIT_FOR_RUN_MS = 15 * 60_000;
/** How long a request id keeps naming its run, for a cancellation that arrives at any gateway. */
const CANCEL_KEY_TTL_SECONDS = 24 * 3600;

type WorkflowCaller = { app: AppContext; project: Project; keyHash: string };

const workflowToolOutput = {
  runId: z.string(),
  status: z.string(),
  output: z.unknown().optional(),
  error: z.unknown().optional(),
};

/**
 * Which run a client's request started, in Redis: this server is stateless, so the `notifications/cancelled`
 * naming the request may reach another gateway than the call did. Keyed by the API key and the request id.
 */
function cancelKey(app: AppContext, keyHash: string, requestId: string | number) {
  return `${app.config.QUEUE_PREFIX}:mcp:request:${keyHash}:${typeof requestId}:${requestId}`;
}

function textResult(structured: Record<string, unknown>, isError = false): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(structured) }], structuredContent: structured, ...(isError ? { isError } : {}) };
}

/** The project's published workflows whose latest version says `mcp: true`. */
async function optInWorkflows(app: AppContext, projectId: string) {
  const workflows = await app.db.workflow.findMany({
    where: { projectId },
    orderBy: { createdAt: "desc" },
    take: 1000,
    include: { versions: { orderBy: { number: "desc" }, take: 1 } },
  });
  return workflows
    .flatMap((workflow) => {
      const latest = workflow.versions[0];
      const definition = latest?.definition as unknown as WorkflowDefinition | undefined;
      return latest && definition?.mcp === true ? [{ slug: workflow.slug, version: latest.number, definition }] : [];
    })
    .slice(0, MAX_WORKFLOW_TOOLS);
}

/**
 * Every published workflow whose file says `mcp: true`, as a tool named by its slug: a call starts a run of the
 * latest version and waits for it, sending `notifications/progress` per finished step when the client asked for
 * progress; a `notifications/cancelled` for the call (at any gateway) or the client going away cancels the run; a
 * run that stops at a `wait` step answers how to resume it.
 */
export async function registerWorkflowTools(server: McpServer, caller: WorkflowCaller, reserved: Set<string>, requestSignal?: AbortSignal) {
  const { app, project } = caller;
  for (const { slug, version, definition } of await optInWorkflows(app, project.id)) {
    if (reserved.has(slug)) {
      app.logger.warn({ slug }, "mcp: a workflow's slug is the name of a built-in tool; it is not offered");
      continue;
    }
    server.registerTool(
      slug,
      {
        title: definition.name ?? slug,
        description: definition.description ?? definition.name ?? `Runs the published workflow "${slug}" and answers with its outputs.`,
        inputSchema: runInputSchema(definition.inputs ?? {}),
        outputSchema: workflowToolOutput,
        annotations: { readOnlyHint: false, openWorldHint: true },
      },
      async (input, extra) => {
        let runId: string | undefined;
        try {
          const run = await startRun(app, { projectId: project.id, slug, version, input });
          runId = run.id;
          await app.redis.set(cancelKey(app, caller.keyHash, extra.requestId), run.id, "EX", CANCEL_KEY_TTL_SECONDS);
          const progressToken = extra._meta?.progressToken;
          const total = definition.steps.length;
          let finished = 0;
          const cancelled = () => extra.signal.aborted || requestSignal?.aborted === true;
          const deadline = AbortSignal.timeout(WAIT_FOR_RUN_MS);
          // The client cancelling (or going away) cancels the run, whose end then ends the watch below.
          const onCancel = () => void cancelRun(app, project.id, run.id).catch(() => {});
          extra.signal.addEventListener("abort", onCancel, { once: true });
          requestSignal?.addEventListener("abort", onCancel, { once: true });
          const stopped = new Promise<"stop">((resolve) => {
            for (const signal of [extra.signal, requestSignal, deadline]) signal?.addEventListener("abort", () => resolve("stop"), { once: true });
          });
          const events = watchRun(app, run.id);
          let waiting: { stepId?: string } | undefined;
          try {
            while (true) {
              const next = await Promise.race([events.next(), stopped]);
              if (next === "stop" || next.done) break;
              const event = next.value;
              const stepEnded = event.type === RunEventType.STEP_FINISHED || event.type === RunEventType.STEP_FAILED || event.type === RunEventType.STEP_SKIPPED;
              if (stepEnded) {
                finished++;
                if (progressToken !== undefined) {
                  await extra
                    .sendNotification({ method: "notifications/progress", params: { progressToken, progress: Math.min(finished, total), total, message: `step ${event.stepId ?? ""} ${event.status ?? ""}`.trim() } })
                    .catch(() => {});
                }
              }
              if (event.type === RunEventType.STEP_WAITING) waiting = { stepId: event.stepId };
              if (event.type === RunEventType.RUN_STATUS && event.status === "WAITING") break;
              if (event.type === RunEventType.RUN_STATUS && event.status && TERMINAL_RUN_STATUSES.has(event.status)) break;
            }
          } finally {
            void events.return?.(undefined);
            extra.signal.removeEventListener("abort", onCancel);
            requestSignal?.removeEventListener("abort", onCancel);
          }
          if (cancelled()) {
            await cancelRun(app, project.id, run.id).catch(() => {});
            return textResult({ runId: run.id, status: "CANCELLED", error: { code: ErrorCode.CANCELLED, message: "the call was cancelled, and its run with it" } }, true);
          }
          const row = await app.db.run.findUniqueOrThrow({ where: { id: run.id } });
          if (row.status === "SUCCEEDED") return textResult({ runId: row.id, status: row.status, output: row.output ?? {} });
          if (row.status === "WAITING") {
            const step = waiting?.stepId ?? "<step id>";
            return textResult({
              runId: row.id,
              status: row.status,
              error: { code: "WAITING", message: `the run waits for input at step ${step}: resume it with the GraphQL mutation resumeRun(id: "${row.id}", stepId: "${step}", input: {...})` },
            });
          }
          if (!TERMINAL_RUN_STATUSES.has(row.status)) {
            return textResult({ runId: row.id, status: row.status, error: { code: ErrorCode.TIMEOUT, message: `still ${row.status} after ${WAIT_FOR_RUN_MS / 60_000} minutes; follow it with run(id) or runEvents(id)` } });
          }
          return textResult({ runId: row.id, status: row.status, error: row.error ?? undefined }, true);
        } catch (error) {
          if (runId && (extra.signal.aborted || requestSignal?.aborted)) await cancelRun(app, project.id, runId).catch(() => {});
          if (error instanceof TesseraError) return { isError: true, content: [{ type: "text", text: `${error.code}: ${error.message}` }] };
          app.logger.error({ err: error, slug }, "mcp: a workflow tool failed");
          return { isError: true, content: [{ type: "text", text: `${ErrorCode.INTERNAL}: the server's logs have the details` }] };
        }
      },
    );
  }

  // A cancellation names the request it cancels; the run it started is found in Redis, whichever gateway ran it.
  server.server.setNotificationHandler(CancelledNotificationSchema, async (notification) => {
    const requestId = notification.params.requestId;
    if (requestId === undefined) return;
    const runId = await app.redis.get(cancelKey(app, caller.keyHash, requestId)).catch(() => null);
    if (runId) await cancelRun(app, project.id, runId).catch((error) => app.logger.warn({ err: error, runId }, "mcp: cancelling a run failed"));
  });
}
