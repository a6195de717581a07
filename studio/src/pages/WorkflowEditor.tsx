import { useMemo, useState } from "react";
import { parse } from "yaml";
import { ApiError, gql } from "../api.ts";
import { EXAMPLES } from "../examples.ts";
import { InputForm, type InputSpec } from "../InputForm.tsx";
import { navigate } from "../router.ts";
import { useAsync } from "../use-async.ts";
import { WorkflowGraph } from "../WorkflowGraph.tsx";
import { YamlEditor, type LineProblem } from "../YamlEditor.tsx";
import { addStep, connectSteps, deleteStep, NEW_WORKFLOW, parseWorkflow, setStepField, STEP_TYPES } from "../workflow-graph.ts";
import { lineDiff } from "../line-diff.ts";

type Version = { number: number; source: string; createdAt: string };

function StepPanel({ source, id, onChange }: { source: string; id: string; onChange: (source: string) => void }) {
  const step = useMemo(() => {
    try {
      return ((parse(source) as { steps?: Array<Record<string, unknown>> })?.steps ?? []).find((s) => s?.id === id);
    } catch {
      return undefined;
    }
  }, [source, id]);
  const [withText, setWithText] = useState(() => JSON.stringify(step?.with ?? {}, null, 2));
  const [ifText, setIfText] = useState(() => String(step?.if ?? ""));
  const [error, setError] = useState<string | null>(null);
  if (!step) return null;
  function apply() {
    try {
      let next = setStepField(source, id, "with", JSON.parse(withText || "{}"));
      next = setStepField(next, id, "if", ifText.trim() || undefined);
      setError(null);
      onChange(next);
    } catch (e) {
      setError(`with must be JSON: ${(e as Error).message}`);
    }
  }
  return (
    <section className="step-panel" aria-label={`Step ${id}`}>
      <h3>
        Step <code>{id}</code> <small>{String(step.uses)}</small>
      </h3>
      <label>
        if
        <input value={ifText} onChange={(e) => setIfText(e.target.value)} placeholder="${{ expression }}" />
      </label>
      <label>
        with (JSON)
        <textarea rows={6} value={withText} onChange={(e) => setWithText(e.target.value)} />
      </label>
      <div className="actions">
        <button type="button" onClick={apply}>Apply to YAML</button>
        <button type="button" className="danger" onClick={() => onChange(deleteStep(source, id))}>
          Delete step
        </button>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

export function WorkflowEditor({ slug }: { slug: string | null }) {
  const loaded = useAsync(async () => {
    if (!slug) {
      const example = new URLSearchParams(location.search).get("example");
      return { versions: [] as Version[], source: EXAMPLES.find((e) => e.name === example)?.source ?? NEW_WORKFLOW };
    }
    const data = await gql<{ workflow: { versions: Version[] } }>(`query W($slug: String!) { workflow(slug: $slug) { versions { number source createdAt } } }`, { slug });
    const versions = [...data.workflow.versions].sort((a, b) => b.number - a.number);
    return { versions, source: versions[0]?.source ?? NEW_WORKFLOW };
  }, [slug]);
  if (loaded.error) return <p role="alert" className="error">{loaded.error.message}</p>;
  if (!loaded.data) return <p>Loading…</p>;
  return <Editor slug={slug} initial={loaded.data.source} versions={loaded.data.versions} />;
}

function Editor({ slug, initial, versions }: { slug: string | null; initial: string; versions: Version[] }) {
  const [source, setSource] = useState(initial);
  const [serverProblems, setServerProblems] = useState<LineProblem[]>([]);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [palette, setPalette] = useState("transform");
  const [selected, setSelected] = useState<string | null>(null);
  const [published, setPublished] = useState<{ slug: string; number: number } | null>(versions[0] && slug ? { slug, number: versions[0].number } : null);
  const [diffWith, setDiffWith] = useState<number | "">("");
  const [runInput, setRunInput] = useState<Record<string, unknown>>({});

  const parsed = useMemo(() => parseWorkflow(source), [source]);
  const inputs = useMemo(() => {
    try {
      return ((parse(source) as { inputs?: Record<string, InputSpec> })?.inputs ?? {}) as Record<string, InputSpec>;
    } catch {
      return {};
    }
  }, [source]);
  const problems: LineProblem[] = useMemo(() => [...parsed.errors, ...serverProblems], [parsed, serverProblems]);

  function change(next: string) {
    setSource(next);
    setServerProblems([]);
    setMessage(null);
  }
  function graphEdit(edit: () => string) {
    try {
      change(edit());
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }

  async function publish() {
    setError(null);
    setMessage(null);
    try {
      const { publishWorkflow: v } = await gql<{ publishWorkflow: { slug: string; number: number; warnings: string[] } }>(
        `mutation Publish($definition: String!) { publishWorkflow(definition: $definition) { slug number warnings } }`,
        { definition: source },
      );
      setPublished({ slug: v.slug, number: v.number });
      setMessage(`Published ${v.slug} v${v.number}${v.warnings.length ? ` — warnings: ${v.warnings.join("; ")}` : ""}`);
      if (slug !== v.slug) history.replaceState(null, "", `/studio/workflows/${encodeURIComponent(v.slug)}`);
    } catch (e) {
      if (e instanceof ApiError && e.problems.length) {
        setServerProblems(e.problems.map((p) => ({ line: p.line ?? 1, column: p.column ?? 1, message: p.path ? `${p.path}: ${p.message}` : p.message })));
      }
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    }
  }

  async function run() {
    if (!published) return;
    setError(null);
    try {
      const { runWorkflow } = await gql<{ runWorkflow: { id: string } }>(
        `mutation Run($slug: String!, $version: Int, $input: JSON) { runWorkflow(slug: $slug, version: $version, input: $input) { id } }`,
        { slug: published.slug, version: published.number, input: runInput },
      );
      navigate(`runs/${runWorkflow.id}`);
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : (e as Error).message);
    }
  }

  const diffVersion = versions.find((v) => v.number === diffWith);
  return (
    <>
      <h1>{slug ?? "New workflow"}</h1>
      <div className="toolbar" role="toolbar" aria-label="Workflow actions">
        <label>
          Step type
          <select value={palette} onChange={(e) => setPalette(e.target.value)} aria-label="Step type to add">
            {STEP_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => graphEdit(() => { const added = addStep(source, palette); setSelected(added.id); return added.source; })}>
          Add step
        </button>
        <button type="button" onClick={publish} disabled={parsed.errors.length > 0}>
          Publish
        </button>
        {versions.length > 0 && (
          <label>
            Diff with
            <select value={diffWith} onChange={(e) => setDiffWith(e.target.value ? Number(e.target.value) : "")}>
              <option value="">—</option>
              {versions.map((v) => (
                <option key={v.number} value={v.number}>v{v.number}</option>
              ))}
            </select>
          </label>
        )}
      </div>
      {message && <p role="status" className="ok" data-testid="publish-message">{message}</p>}
      {error && <p role="alert" className="error">{error}</p>}
      {problems.length > 0 && (
        <ul className="problems" aria-label="Problems">
          {problems.map((p, i) => (
            <li key={i}>
              {p.line}:{p.column} {p.message}
            </li>
          ))}
        </ul>
      )}
      <div className="editor-layout">
        <YamlEditor value={source} onChange={change} problems={problems} />
        <div>
          <WorkflowGraph
            steps={parsed.steps}
            edges={parsed.edges}
            onConnect={(from, to) => graphEdit(() => connectSteps(source, from, to))}
            onDeleteNodes={(ids) => graphEdit(() => ids.reduce((s, id) => deleteStep(s, id), source))}
            onSelect={setSelected}
          />
          {selected && <StepPanel key={`${selected}:${source.length}`} source={source} id={selected} onChange={change} />}
        </div>
      </div>
      {diffVersion && (
        <section aria-label="Diff">
          <h2>Diff: v{diffVersion.number} → editor</h2>
          <pre className="diff">
            {lineDiff(diffVersion.source, source).map((l, i) => (
              <div key={i} className={`diff-${l.kind}`}>
                {l.kind === "add" ? "+ " : l.kind === "remove" ? "- " : "  "}
                {l.text}
              </div>
            ))}
          </pre>
        </section>
      )}
      <section aria-label="Run">
        <h2>Run</h2>
        {published ? (
          <>
            <p>Runs {published.slug} v{published.number} (publish to run the editor's content).</p>
            <InputForm specs={inputs} value={runInput} onChange={setRunInput} />
            <button type="button" onClick={run}>Run</button>
          </>
        ) : (
          <p>Publish the workflow to run it.</p>
        )}
      </section>
    </>
  );
}
