import { useState, type FormEvent } from "react";
import { gql } from "../api.ts";
import { useAsync } from "../use-async.ts";

type Scope = "READ" | "WRITE" | "ADMIN";
type ApiKey = {
  id: string;
  name: string | null;
  prefix: string;
  scopes: Scope[];
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  current: boolean;
};

const SCOPES: { scope: Scope; hint: string }[] = [
  { scope: "READ", hint: "queries and subscriptions" },
  { scope: "WRITE", hint: "mutations" },
  { scope: "ADMIN", hint: "list, create and revoke keys" },
];
const FIELDS = "id name prefix scopes createdAt expiresAt lastUsedAt revokedAt current";

function when(value: string | null, none: string) {
  return value ? new Date(value).toLocaleString() : none;
}

/** The project's API keys (`keys`, `createKey`, `revokeKey`; each needs the ADMIN scope, so a lesser key sees FORBIDDEN here). */
export function Keys() {
  const [includeRevoked, setIncludeRevoked] = useState(true);
  const keys = useAsync(
    () =>
      gql<{ keys: { edges: { node: ApiKey }[]; totalCount?: number } }>(
        `query Keys($includeRevoked: Boolean) { keys(first: 100, includeRevoked: $includeRevoked) { edges { node { ${FIELDS} } } } }`,
        { includeRevoked },
      ).then((d) => d.keys.edges.map((e) => e.node)),
    [includeRevoked],
  );

  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["READ", "WRITE"]);
  const [expiresAt, setExpiresAt] = useState("");
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);
  const [created, setCreated] = useState<{ key: string; apiKey: ApiKey } | null>(null);
  const [copied, setCopied] = useState<string | null>(null);

  const [confirming, setConfirming] = useState<string | null>(null);
  const [revoking, setRevoking] = useState(false);
  const [revokeError, setRevokeError] = useState<string | null>(null);

  async function create(event: FormEvent) {
    event.preventDefault();
    setCreating(true);
    setCreateError(null);
    setCreated(null);
    setCopied(null);
    try {
      const variables = { name: name.trim() || null, scopes, expiresAt: expiresAt ? new Date(expiresAt).toISOString() : null };
      const data = await gql<{ createKey: { key: string; apiKey: ApiKey } }>(
        `mutation CreateKey($name: String, $scopes: [ApiKeyScope!], $expiresAt: DateTime) { createKey(name: $name, scopes: $scopes, expiresAt: $expiresAt) { key apiKey { ${FIELDS} } } }`,
        variables,
      );
      setCreated(data.createKey);
      setName("");
      setExpiresAt("");
      keys.reload();
    } catch (e) {
      setCreateError((e as Error).message);
    } finally {
      setCreating(false);
    }
  }

  async function copy(key: string) {
    try {
      await navigator.clipboard.writeText(key);
      setCopied("Copied.");
    } catch {
      setCopied("The browser refused the clipboard: select the key and copy it.");
    }
  }

  async function revoke(id: string) {
    setRevoking(true);
    setRevokeError(null);
    try {
      await gql(`mutation RevokeKey($id: ID!) { revokeKey(id: $id) { id revokedAt } }`, { id });
      setConfirming(null);
      keys.reload();
    } catch (e) {
      setRevokeError((e as Error).message);
    } finally {
      setRevoking(false);
    }
  }

  const list = keys.data ?? [];
  const target = list.find((k) => k.id === confirming);

  return (
    <>
      <h1>API keys</h1>
      <p className="hint">Listing, creating and revoking keys needs a key with the ADMIN scope. A new key's scopes must be among this key's.</p>

      <h2>New key</h2>
      <form onSubmit={create} className="toolbar" aria-label="New key">
        <label>
          Name
          <input value={name} maxLength={100} onChange={(e) => setName(e.target.value)} placeholder="e.g. laptop" />
        </label>
        <fieldset className="filters">
          <legend>Scopes</legend>
          {SCOPES.map(({ scope, hint }) => (
            <label key={scope} title={hint}>
              <input
                type="checkbox"
                checked={scopes.includes(scope)}
                onChange={(e) => setScopes((s) => (e.target.checked ? [...s, scope] : s.filter((x) => x !== scope)))}
              />
              {scope}
            </label>
          ))}
        </fieldset>
        <label>
          Expires (optional)
          <input type="datetime-local" value={expiresAt} onChange={(e) => setExpiresAt(e.target.value)} />
        </label>
        <button type="submit" disabled={creating || scopes.length === 0}>
          {creating ? "Creating…" : "Create key"}
        </button>
      </form>
      {createError && (
        <p role="alert" className="error">
          {createError}
        </p>
      )}
      {created && (
        <section aria-label="Created key" className="card">
          <p>
            <strong>Copy this key now: it will not be shown again.</strong> Only its prefix is kept.
          </p>
          <label htmlFor="created-key">Key {created.apiKey.name ?? created.apiKey.prefix}</label>
          <input id="created-key" className="mono" readOnly value={created.key} onFocus={(e) => e.target.select()} />
          <div className="actions">
            <button type="button" onClick={() => copy(created.key)}>
              Copy key
            </button>
            <button type="button" className="secondary" onClick={() => setCreated(null)}>
              Done
            </button>
          </div>
          {copied && <p role="status">{copied}</p>}
        </section>
      )}

      <h2>Keys</h2>
      <div className="filters">
        <label style={{ flexDirection: "row", alignItems: "center" }}>
          <input type="checkbox" checked={includeRevoked} onChange={(e) => setIncludeRevoked(e.target.checked)} />
          Show revoked keys
        </label>
      </div>
      {keys.error && (
        <p role="alert" className="error">
          {keys.error.message}
        </p>
      )}
      {target && (
        <div role="alertdialog" aria-label="Confirm revoke" className="card">
          {target.current ? (
            <p className="error">
              <strong>This is the key this studio is using.</strong> Revoking it stops it at once: the studio will stop working until you enter another key.
            </p>
          ) : (
            <p>Revoke key {target.name ?? target.prefix}? It stops working at once; this cannot be undone.</p>
          )}
          <div className="actions">
            <button type="button" className="danger" disabled={revoking} onClick={() => revoke(target.id)}>
              {target.current ? "Revoke the key in use" : "Confirm revoke"}
            </button>
            <button type="button" className="secondary" autoFocus onClick={() => setConfirming(null)}>
              Cancel
            </button>
          </div>
          {revokeError && (
            <p role="alert" className="error">
              {revokeError}
            </p>
          )}
        </div>
      )}
      <table aria-label="API keys">
        <thead>
          <tr>
            <th>Name</th><th>Prefix</th><th>Scopes</th><th>Created</th><th>Expires</th><th>Last used</th><th>Status</th><th><span className="visually-hidden">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {list.map((k) => (
            <tr key={k.id} data-key-id={k.id} data-revoked={k.revokedAt ? "true" : "false"}>
              <td>
                {k.name ?? <span className="hint">(no name)</span>} {k.current && <span className="badge status-ready">this studio's key</span>}
              </td>
              <td className="mono">{k.prefix}</td>
              <td>{k.scopes.join(", ")}</td>
              <td>{when(k.createdAt, "")}</td>
              <td>{when(k.expiresAt, "never")}</td>
              <td>{when(k.lastUsedAt, "never")}</td>
              <td>{k.revokedAt ? <span className="badge status-failed">revoked {when(k.revokedAt, "")}</span> : <span className="badge status-ready">active</span>}</td>
              <td>
                {!k.revokedAt && (
                  <button
                    type="button"
                    className="secondary"
                    aria-label={`Revoke ${k.name ?? k.prefix}`}
                    onClick={() => {
                      setRevokeError(null);
                      setConfirming(k.id);
                    }}
                  >
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!keys.loading && !keys.error && list.length === 0 && <p className="hint">No keys.</p>}
    </>
  );
}
