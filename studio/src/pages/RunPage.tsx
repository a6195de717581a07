import { useEffect, useMemo, useRef, useState } from "react";
import { ApiError, gql, RUN_EVENTS, subscribe } from "../api.ts";
import { InputForm, type InputSpec } from "../InputForm.tsx";
import { linkProps } from "../router.ts";
import { WorkflowGraph } from "../WorkflowGraph.tsx";
import { parseWorkflow } from "../workflow-graph.ts";
import { groupToolCalls, nodeStatuses } from "../run-steps.ts";

type StepRun = {
  id: string;
  stepId: string;
  status: string;
  attempts: number;
  input: unknown;
  output: unknown;
  error: { code: string; message: string } | null;
  startedAt: string | null;
  finishedAt: string | null;
};
type Run = {
  id: string;
  status: string;
  input: unknown;
  output: unknown;
  error: { code: string; message: string } | null;
  steps: StepRun[];
  version: { slug: string; number: number; source: string; definition: { steps?: Array<{ id: string; uses: string; with?: { prompt?: string; fields?: Record<string, InputSpec> } }> } };
};
type RunEvent = { runEvents: { type: string; status: string | null; stepId: string | null; stepKey: string | null; token: string | null; message: string | null; at: string } };

const RUN_QUERY = `query Run($id: ID!) { run(id: $id) { id status input output error { code message }
  steps { id stepId status attempts input output error { code message } startedAt finishedAt }
  version { slug number source definition } } }`;
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

function duration(step: StepRun): string {
  if (!step.startedAt) return "";
  const end = step.finishedAt ? Date.parse(step.finishedAt) : Date.now();
  return `${((end - Date.parse(step.startedAt)) / 1000).toFixed(1)} s`;
}

function ResumeForm({ run, step, onDone }: { run: Run; step: StepRun; onDone: () => void }) {
  const definition = run.version.definition.steps?.find((s) => s.id === step.stepId);
  const [value, setValue] = useState<Record<string, unknown>>({});
  const [error, setError] = useState<string | null>(null);
  async function resume() {
    try {
      await gql(`mutation Resume($id: ID!, $stepId: String!, $input: JSON) { resumeRun(id: $id, stepId: $stepId, input: $input) { id } }`, {
        id: run.id,
        stepId: step.stepId,
        input: value,
      });
      onDone();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    }
  }
  return (
    <section className="resume" aria-label={`Resume ${step.stepId}`}>
      <h3>Waiting: {step.stepId}</h3>
      {definition?.with?.prompt && <p>{definition.with.prompt}</p>}
      <InputForm specs={definition?.with?.fields ?? {}} value={value} onChange={setValue} />
      <button type="button" onClick={resume}>Resume</button>
      {error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

/** A run live: the graph coloured by each step's status over `runEvents`, tokens as they stream, each step's details. */
export function RunPage({ id }: { id: string }) {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tokens, setTokens] = useState<Record<string, string>>({});
  const [log, setLog] = useState<string[]>([]);
  const refetch = useRef<() => void>(() => {});

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = () =>
      gql<{ run: Run }>(RUN_QUERY, { id }).then(
        (d) => live && setRun(d.run),
        (e: Error) => live && setError(e.message),
      );
    // Many events arrive together: read the run once per burst.
    refetch.current = () => {
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    };
    void load();
    const stop = subscribe<RunEvent>(RUN_EVENTS, { id }, {
      onData: ({ runEvents: event }) => {
        if (event.type === "TOKEN" && event.token) {
          const key = event.stepKey ?? event.stepId ?? "";
          setTokens((t) => ({ ...t, [key]: (t[key] ?? "") + event.token }));
          return;
        }
        if (event.type === "LOG" && event.message) setLog((l) => [...l, `${event.stepKey ?? ""} ${event.message}`]);
        refetch.current();
      },
      onError: (e) => live && setError(`live updates stopped: ${e.message}`),
      onComplete: () => refetch.current(),
    });
    return () => {
      live = false;
      clearTimeout(timer);
      stop();
    };
  }, [id]);

  const graph = useMemo(() => (run ? parseWorkflow(run.version.source) : null), [run?.version.source]);
  const statuses = useMemo(() => nodeStatuses(run?.steps ?? []), [run]);
  const grouped = useMemo(() => groupToolCalls(run?.steps ?? []), [run]);

  async function cancel() {
    try {
      await gql(`mutation Cancel($id: ID!) { cancelRun(id: $id) { id } }`, { id });
      refetch.current();
    } catch (e) {
      setError((e as Error).message);
    }
  }

  if (!run) return error ? <p role="alert" className="error">{error}</p> : <p>Loading…</p>;
  return (
    <>
      <h1>
        Run of <a {...linkProps(`workflows/${encodeURIComponent(run.version.slug)}`)}>{run.version.slug}</a> v{run.version.number}
      </h1>
      <p>
        Status: <span className={`badge status-${run.status.toLowerCase()}`} data-testid="run-status">{run.status}</span>{" "}
        {!TERMINAL.has(run.status) && (
          <button type="button" className="danger" onClick={cancel}>Cancel</button>
        )}
      </p>
      {error && <p role="alert" className="error">{error}</p>}
      {run.error && <p className="error">{run.error.code}: {run.error.message}</p>}
      {run.steps.filter((s) => s.status === "WAITING" && s.id === s.stepId && run.version.definition.steps?.find((d) => d.id === s.stepId)?.uses === "wait").map((s) => (
        <ResumeForm key={s.id} run={run} step={s} onDone={() => refetch.current()} />
      ))}
      {graph && <WorkflowGraph steps={graph.steps} edges={graph.edges} statuses={statuses} />}
      <h2>Steps</h2>
      <ul className="step-runs">
        {grouped.map(({ row: s, calls }) => (
          <li key={s.id} data-step={s.id}>
            <details>
              <summary>
                <span className={`badge status-${s.status.toLowerCase()}`}>{s.status}</span> <strong>{s.id}</strong> {duration(s)}
                {s.attempts > 1 ? ` · ${s.attempts} attempts` : ""}
                {calls.length > 0 ? ` · ${calls.length} tool calls` : ""}
              </summary>
              {tokens[s.id] && <pre className="tokens">{tokens[s.id]}</pre>}
              <h4>Input</h4>
              <pre>{JSON.stringify(s.input, null, 2)}</pre>
              <h4>Output</h4>
              <pre>{JSON.stringify(s.output, null, 2)}</pre>
              {s.error && <p className="error">{s.error.code}: {s.error.message}</p>}
              {calls.length > 0 && (
                <>
                  <h4>Tool calls</h4>
                  <ol className="timeline" aria-label={`Tool calls of ${s.id}`}>
                    {calls.map(({ row: c, attempt, index }) => (
                      <li key={c.id}>
                        <details>
                          <summary>
                            <span className={`badge status-${c.status.toLowerCase()}`}>{c.status}</span> call {index}
                            {attempt > 1 ? ` (attempt ${attempt})` : ""}: <code>{String((c.input as { tool?: string } | null)?.tool ?? "")}</code> {duration(c)}
                          </summary>
                          <pre>{JSON.stringify((c.input as { arguments?: unknown } | null)?.arguments ?? c.input, null, 2)}</pre>
                          <pre>{JSON.stringify(c.output, null, 2)}</pre>
                          {c.error && <p className="error">{c.error.code}: {c.error.message}</p>}
                        </details>
                      </li>
                    ))}
                  </ol>
                </>
              )}
            </details>
          </li>
        ))}
      </ul>
      {run.output != null && (
        <>
          <h2>Output</h2>
          <pre data-testid="run-output">{JSON.stringify(run.output, null, 2)}</pre>
        </>
      )}
      {log.length > 0 && (
        <>
          <h2>Log</h2>
          <pre>{log.join("\n")}</pre>
        </>
      )}
    </>
  );
}
