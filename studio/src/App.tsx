import { lazy, Suspense, useState, type FormEvent } from "react";
import { gql, storeKey, storedKey } from "./api.ts";
import { linkProps, useRoute } from "./router.ts";
import { AssetPage } from "./pages/AssetPage.tsx";
import { Assets } from "./pages/Assets.tsx";
import { Keys } from "./pages/Keys.tsx";
import { Models } from "./pages/Models.tsx";
import { Search } from "./pages/Search.tsx";
import { Workflows } from "./pages/Workflows.tsx";

// The graph (React Flow, elkjs) and the editor (CodeMirror) are most of the code: loaded when a workflow page opens.
const WorkflowEditor = lazy(() => import("./pages/WorkflowEditor.tsx").then((m) => ({ default: m.WorkflowEditor })));
const RunPage = lazy(() => import("./pages/RunPage.tsx").then((m) => ({ default: m.RunPage })));

const SECTIONS = [
  ["assets", "Assets"],
  ["search", "Search"],
  ["workflows", "Workflows"],
  ["models", "Models"],
  ["keys", "API keys"],
] as const;

function KeyEntry({ onKey }: { onKey: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Any query that needs a key tells whether this one is valid.
      await gql(`query { workflows { slug } }`, {}, key.trim());
      onKey(key.trim());
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main className="key-entry">
      <h1>Tessera Studio</h1>
      <form onSubmit={submit}>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} required />
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Checking…" : "Open studio"}
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <p className="hint">
          The key stays in this tab (session storage). Make one with <code>npx tessera keys create --project NAME</code>.
        </p>
      </form>
    </main>
  );
}

function Page({ route }: { route: string }) {
  const [section, id] = route.split("/").map(decodeURIComponent);
  if (section === "assets" && id) return <AssetPage id={id} />;
  if (section === "search") return <Search />;
  if (section === "workflows" && id) return <WorkflowEditor slug={id === "new" ? null : id} />;
  if (section === "workflows") return <Workflows />;
  if (section === "runs" && id) return <RunPage id={id} />;
  if (section === "models") return <Models />;
  if (section === "keys") return <Keys />;
  return <Assets />;
}

export function App() {
  const [key, setKey] = useState(storedKey);
  const route = useRoute();
  if (!key)
    return (
      <KeyEntry
        onKey={(k) => {
          storeKey(k);
          setKey(k);
        }}
      />
    );
  const section = route.split("/")[0] || "assets";
  return (
    <div className="shell">
      <header>
        <a className="brand" {...linkProps("assets")}>
          Tessera Studio
        </a>
        <nav aria-label="Sections">
          {SECTIONS.map(([path, label]) => (
            <a key={path} {...linkProps(path)} aria-current={section === path || (section === "runs" && path === "workflows") ? "page" : undefined}>
              {label}
            </a>
          ))}
          <a href="/graphql" target="_blank" rel="noreferrer">
            GraphiQL
          </a>
        </nav>
        <button
          type="button"
          className="secondary"
          onClick={() => {
            storeKey(null);
            setKey(null);
          }}
        >
          Forget key
        </button>
      </header>
      <main>
        <Suspense fallback={<p>Loading…</p>}>
          <Page key={route} route={route} />
        </Suspense>
      </main>
    </div>
  );
}
