import { useState } from "react";
import { gql } from "../api.ts";
import { linkProps } from "../router.ts";
import { useAsync } from "../use-async.ts";
import { EXAMPLES } from "../examples.ts";

type Workflow = { slug: string; createdAt: string; published: { number: number } | null; versions: Array<{ number: number; createdAt: string }> };
type RunRow = { id: string; status: string; createdAt: string; version: { slug: string; number: number } };

export function Workflows() {
  const workflows = useAsync(
    () => gql<{ workflows: Workflow[] }>(`query { workflows { slug createdAt published { number } versions { number createdAt } } }`).then((d) => d.workflows),
    [],
  );
  const [runSlug, setRunSlug] = useState("");
  const [runStatus, setRunStatus] = useState("");
  const runs = useAsync(
    () =>
      gql<{ runs: RunRow[] }>(`query Runs($slug: String, $status: RunStatus) { runs(limit: 50, slug: $slug, status: $status) { id status createdAt version { slug number } } }`, {
        slug: runSlug || null,
        status: runStatus || null,
      }).then((d) => d.runs),
    [runSlug, runStatus],
  );
  return (
    <>
      <h1>Workflows</h1>
      <p>
        <a className="button" {...linkProps("workflows/new")}>New workflow</a>{" "}
        {EXAMPLES.map((e) => (
          <a key={e.name} className="button secondary" {...linkProps(`workflows/new?example=${encodeURIComponent(e.name)}`)}>
            Example: {e.name}
          </a>
        ))}
      </p>
      {workflows.error && <p role="alert" className="error">{workflows.error.message}</p>}
      <table aria-label="Workflows">
        <thead>
          <tr><th>Slug</th><th>Latest version</th><th>Versions</th></tr>
        </thead>
        <tbody>
          {(workflows.data ?? []).map((w) => (
            <tr key={w.slug}>
              <td><a {...linkProps(`workflows/${encodeURIComponent(w.slug)}`)}>{w.slug}</a></td>
              <td>{w.published ? `v${w.published.number}` : "none"}</td>
              <td>{w.versions.map((v) => `v${v.number}`).join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Runs</h2>
      <form className="filters" aria-label="Run filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Workflow
          <select value={runSlug} onChange={(e) => setRunSlug(e.target.value)}>
            <option value="">All</option>
            {(workflows.data ?? []).map((w) => (
              <option key={w.slug}>{w.slug}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={runStatus} onChange={(e) => setRunStatus(e.target.value)}>
            <option value="">All</option>
            {["QUEUED", "RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELLED"].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      <table aria-label="Runs">
        <thead>
          <tr><th>Run</th><th>Workflow</th><th>Status</th><th>Started</th></tr>
        </thead>
        <tbody>
          {(runs.data ?? []).map((r) => (
            <tr key={r.id}>
              <td><a {...linkProps(`runs/${r.id}`)}>{r.id.slice(0, 8)}</a></td>
              <td>{r.version.slug} v{r.version.number}</td>
              <td><span className={`badge status-${r.status.toLowerCase()}`}>{r.status}</span></td>
              <td>{new Date(r.createdAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
