import { useMemo, useState } from "react";
import { parse } from "yaml";
import { ApiError, gql } from "../api.ts";
import { EXAMPLES } from "../examples.ts";
import { InputForm, type InputSpec } from "../InputForm.tsx";
import { navigate } from "../router.ts";
import { useAsync } from "../use-async.ts";
import { WorkflowGraph } from "../WorkflowGraph.tsx";
import { YamlEditor, type LineProblem } from "../YamlEditor.tsx";
import {
  addStep,
  connectSteps,
  deleteStep,
  fieldKind,
  loadStepTypes,
  NEW_WORKFLOW,
  parseWorkflow,
  setStepField,
  setStepWithField,
  type JsonSchema,
  type StepTypeSchema,
} from "../workflow-graph.ts";
import { lineDiff } from "../line-diff.ts";

type Version = { number: number; source: string; createdAt: string };

/** One field of a step's `with`, generated from its JSON Schema; written to the YAML when it loses focus. */
function WithField({ name, schema, value, required, onCommit }: { name: string; schema: JsonSchema; value: unknown; required: boolean; onCommit: (v: unknown) => void }) {
  const kind = fieldKind(schema);
  const id = `with-${name}`;
  const text = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  const commit = (raw: string) => {
    if (raw === text) return;
    if (raw.trim() === "") return onCommit(undefined);
    if (raw.includes("${{")) return onCommit(raw);
    if (kind.type === "number" || kind.type === "integer") return onCommit(Number.isFinite(Number(raw)) ? Number(raw) : raw);
    if (kind.type === "boolean") return onCommit(raw === "true" ? true : raw === "false" ? false : raw);
    if (kind.type === "object" || kind.type === "array" || kind.type === "any") {
      try {
        return onCommit(JSON.parse(raw));
      } catch {
        return onCommit(raw);
      }
    }
    return onCommit(raw);
  };
  let control;
  if (kind.type === "enum" || kind.type === "boolean") {
    const options = kind.type === "boolean" ? ["true", "false"] : (kind.enum ?? []).map(String);
    control = (
      <select id={id} defaultValue={text} onChange={(e) => commit(e.target.value)}>
        <option value="">{schema.default !== undefined ? `default (${String(schema.default)})` : "—"}</option>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
        {text && !options.includes(text) && <option>{text}</option>}
      </select>
    );
  } else if (kind.type === "object" || kind.type === "array" || kind.type === "any" || text.includes("\n"))
    control = <textarea id={id} rows={3} defaultValue={text} onBlur={(e) => commit(e.target.value)} placeholder="JSON or ${{ expression }}" />;
  else control = <input id={id} defaultValue={text} onBlur={(e) => commit(e.target.value)} onKeyDown={(e) => e.key === "Enter" && commit(e.currentTarget.value)} placeholder={kind.type} />;
  return (
    <div className="field">
      <label htmlFor={id}>
        {name}
        {required ? " *" : ""} <small>{kind.type}</small>
      </label>
      {control}
      {schema.description && <small className="hint">{schema.description}</small>}
    </div>
  );
}

/** The selected step: its `if`, and its `with` as a form generated from the step type's JSON Schema (JSON where the schema has no fields). */
function StepPanel({ source, id, types, onChange }: { source: string; id: string; types: StepTypeSchema[]; onChange: (source: string) => void }) {
  const step = useMemo(() => {
    try {
      return ((parse(source) as { steps?: Array<Record<string, unknown>> })?.steps ?? []).find((s) => s?.id === id);
    } catch {
      return undefined;
    }
  }, [source, id]);
  const [withText, setWithText] = useState(() => JSON.stringify(step?.with ?? {}, null, 2));
  const [error, setError] = useState<string | null>(null);
  if (!step) return null;
  const type = types.find((t) => t.uses === step.uses);
  const fields = type?.with?.properties;
  const current = (step.with && typeof step.with === "object" ? step.with : {}) as Record<string, unknown>;
  const write = (edit: () => string) => {
    try {
      setError(null);
      onChange(edit());
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section className="step-panel" aria-label={`Step ${id}`}>
      <h3>
        Step <code>{id}</code> <small>{String(step.uses)}</small>
      </h3>
      {type?.description && <p className="hint">{type.description}</p>}
      <div className="field">
        <label htmlFor="step-if">if</label>
        <input id="step-if" defaultValue={String(step.if ?? "")} placeholder="${{ expression }}" onBlur={(e) => e.target.value.trim() !== String(step.if ?? "") && write(() => setStepField(source, id, "if", e.target.value.trim() || undefined))} />
      </div>
      {fields && Object.keys(fields).length > 0 ? (
        <fieldset className="input-form">
          <legend>with</legend>
          {Object.entries(fields).map(([name, schema]) => (
            <WithField key={name} name={name} schema={schema} value={current[name]} required={type?.with?.required?.includes(name) ?? false} onCommit={(v) => write(() => setStepWithField(source, id, name, v))} />
          ))}
        </fieldset>
      ) : (
        <div className="field">
          <label htmlFor="step-with">with (JSON)</label>
          <textarea id="step-with" rows={6} value={withText} onChange={(e) => setWithText(e.target.value)} />
          <button type="button" onClick={() => write(() => setStepField(source, id, "with", JSON.parse(withText || "{}")))}>
            Apply to YAML
          </button>
        </div>
      )}
      <div className="actions">
        <button type="button" className="danger" onClick={() => write(() => deleteStep(source, id))}>
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
  const types = useAsync(loadStepTypes, []).data ?? [];
  const inputs = useMemo(() => {
    try {
      return ((parse(source) as { inputs?: Record<string, InputSpec> })?.inputs ?? {}) as Record<string, InputSpec>;
    } catch {
      return {};
    }
  }, [source]);
  const problems: LineProblem[] = useMemo(() => [...parsed.errors, ...serverProblems], [parsed, serverProblems]);

  // The step panel keeps its fields while it is the one writing; any other edit (YAML, graph) refreshes it.
  const [revision, setRevision] = useState(0);
  function changeFromPanel(next: string) {
    setSource(next);
    setServerProblems([]);
    setMessage(null);
    setError(null);
  }
  function change(next: string) {
    changeFromPanel(next);
    setRevision((r) => r + 1);
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
            {(types.length ? types.map((t) => t.uses) : ["transform"]).map((t) => (
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
            selectedId={selected}
          />
          {selected && <StepPanel key={`${selected}:${revision}`} source={source} id={selected} types={types} onChange={changeFromPanel} />}
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
