import { useState } from "react";
import { assetFields, gql, type Asset, type TextSpan } from "../api.ts";
import { navigate } from "../router.ts";
import { formatBytes, useAsync } from "../use-async.ts";
import { AssetPreview } from "./AssetCard.tsx";
import { Waveform } from "../Waveform.tsx";

/** Lines of text that decoding found (OCR lines, transcript segments), wherever `media` keeps them. */
function Segments({ name, items }: { name: string; items: unknown[] }) {
  return (
    <section>
      <h3>{name}</h3>
      <ol className="segments">
        {items.map((item, i) => {
          if (item && typeof item === "object") {
            const o = item as Record<string, unknown>;
            const start = typeof o.start === "number" ? o.start : undefined;
            const text = o.text ?? o.line ?? JSON.stringify(o);
            return (
              <li key={i}>
                {start !== undefined && <time>{start.toFixed(1)}s </time>}
                {String(text)}
              </li>
            );
          }
          return <li key={i}>{String(item)}</li>;
        })}
      </ol>
    </section>
  );
}

/** The text the asset was indexed by, grouped by where it came from: OCR lines, the transcript with its times, chunks. */
function TextSpans({ spans }: { spans: TextSpan[] }) {
  const kinds = [...new Set(spans.map((s) => s.kind))];
  return (
    <>
      {kinds.map((kind) => (
        <section key={kind} aria-label={kind}>
          <h3>{kind}</h3>
          <ol className="segments">
            {spans
              .filter((s) => s.kind === kind)
              .map((s, i) => (
                <li key={i}>
                  {kind !== "CHUNK" && kind !== "OCR" && (
                    <time>
                      {s.start.toFixed(1)}–{s.end.toFixed(1)}s{" "}
                    </time>
                  )}
                  {s.text || <em>(speech)</em>}
                </li>
              ))}
          </ol>
        </section>
      ))}
    </>
  );
}

function MediaInfo({ media }: { media: Record<string, unknown> }) {
  const scalars = Object.entries(media).filter(([, v]) => v === null || typeof v !== "object");
  const lists = Object.entries(media).filter(([, v]) => Array.isArray(v) && v.length > 0) as Array<[string, unknown[]]>;
  const objects = Object.entries(media).filter(([, v]) => v && typeof v === "object" && !Array.isArray(v));
  return (
    <>
      {scalars.length > 0 && (
        <dl className="facts">
          {scalars.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{String(v)}</dd>
            </div>
          ))}
        </dl>
      )}
      {lists.map(([k, v]) => (
        <Segments key={k} name={k} items={v} />
      ))}
      {objects.map(([k, v]) => (
        <details key={k}>
          <summary>{k}</summary>
          <pre>{JSON.stringify(v, null, 2)}</pre>
        </details>
      ))}
    </>
  );
}

export function AssetPage({ id }: { id: string }) {
  const [error, setError] = useState<string | null>(null);
  const asset = useAsync(async () => {
    const fields = await assetFields(1000);
    const data = await gql<{ asset: Asset }>(`query Asset($id: ID!) { asset(id: $id) { ${fields} sha256 source media metadata error } }`, { id });
    return data.asset;
  }, [id]);

  async function remove() {
    if (!confirm("Delete this asset, its vectors and its bytes?")) return;
    try {
      await gql(`mutation Delete($id: ID!) { deleteAsset(id: $id) { id } }`, { id });
      navigate("assets");
    } catch (e) {
      setError((e as Error).message);
    }
  }
  async function reindex() {
    try {
      await gql(`mutation Reindex($id: ID!) { reindexAsset(id: $id) { asset { id } } }`, { id });
      asset.reload();
    } catch (e) {
      setError((e as Error).message);
    }
  }

  if (asset.error) return <p role="alert" className="error">{asset.error.message}</p>;
  const a = asset.data;
  if (!a) return <p>Loading…</p>;
  return (
    <article className="asset-page">
      <h1>{a.filename ?? a.id}</h1>
      <div className="asset-layout">
        <div className="asset-media">
          <AssetPreview asset={a} large />
          {a.modality === "AUDIO" && a.contentUrl && <Waveform url={a.contentUrl} label={a.filename ?? a.id} />}
          {!a.contentUrl && <p className="hint">This gateway does not serve asset content to the studio (no Asset.contentUrl).</p>}
        </div>
        <div>
          <dl className="facts">
            <div><dt>Status</dt><dd data-testid="asset-status">{a.status}</dd></div>
            <div><dt>Modality</dt><dd>{a.modality}</dd></div>
            <div><dt>Type</dt><dd>{a.mimeType}</dd></div>
            <div><dt>Size</dt><dd>{formatBytes(a.byteSize)}</dd></div>
            <div><dt>Source</dt><dd>{a.source}</dd></div>
            <div><dt>Tags</dt><dd>{a.tags.join(", ") || "none"}</dd></div>
            <div><dt>SHA-256</dt><dd className="mono">{a.sha256}</dd></div>
          </dl>
          {a.error != null && <pre className="error">{JSON.stringify(a.error, null, 2)}</pre>}
          <div className="actions">
            <button type="button" onClick={reindex}>Re-index</button>
            <button type="button" className="danger" onClick={remove}>Delete</button>
          </div>
          {error && <p role="alert" className="error">{error}</p>}
        </div>
      </div>
      <h2>What decoding found</h2>
      <MediaInfo media={a.media ?? {}} />
      {a.textSpans && a.textSpans.length > 0 && <TextSpans spans={a.textSpans} />}
      {a.metadata && Object.keys(a.metadata).length > 0 && (
        <>
          <h2>Metadata</h2>
          <pre>{JSON.stringify(a.metadata, null, 2)}</pre>
        </>
      )}
    </article>
  );
}
