import { gql } from "../api.ts";
import { useAsync } from "../use-async.ts";

type Model = { name: string; task: string; modality: string; device: string; space: string | null; dimensions: number | null };

export function Models() {
  const models = useAsync(() => gql<{ models: Model[] }>(`query { models { name task modality device space dimensions } }`).then((d) => d.models), []);
  return (
    <>
      <h1>Models</h1>
      {models.error && <p role="alert" className="error">{models.error.message}</p>}
      <table>
        <thead>
          <tr><th>Name</th><th>Task</th><th>Modality</th><th>Device</th><th>Space</th><th>Dimensions</th></tr>
        </thead>
        <tbody>
          {(models.data ?? []).map((m) => (
            <tr key={`${m.name}-${m.task}`}>
              <td>{m.name}</td><td>{m.task}</td><td>{m.modality}</td><td>{m.device}</td><td>{m.space ?? ""}</td><td>{m.dimensions ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">API keys are listed, made and revoked on the API keys page (or with <code>npx tessera keys</code>).</p>
    </>
  );
}
