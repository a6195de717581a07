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
  const runs = useAsync(() => gql<{ runs: RunRow[] }>(`query { runs(limit: 20) { id status createdAt version { slug number } } }`).then((d) => d.runs), []);
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
      <h2>Recent runs</h2>
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
