import { useState, type DragEvent, type FormEvent } from "react";
import { assetFields, gql, gqlUpload, type Asset } from "../api.ts";
import { useAsync } from "../use-async.ts";
import { AssetCard } from "./AssetCard.tsx";

type Hit = { asset: Asset; score: number; snippet: string | null; spaces: string[] };
const MODALITIES = ["IMAGE", "AUDIO", "VIDEO", "TEXT"] as const;

/** One box: text, or a dropped (or picked) image or audio clip; filters, hybrid alpha and space weights. */
export function Search() {
  const [text, setText] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [modalities, setModalities] = useState<string[]>([]);
  const [hybrid, setHybrid] = useState(false);
  const [alpha, setAlpha] = useState(0.5);
  const [weights, setWeights] = useState<Record<string, number>>({});
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [recorder, setRecorder] = useState<MediaRecorder | null>(null);

  /** Records a clip from the microphone; stopping it searches with the clip. */
  async function toggleRecording() {
    if (recorder) {
      recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const next = new MediaRecorder(stream);
      const chunks: Blob[] = [];
      next.ondataavailable = (e) => chunks.push(e.data);
      next.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        setRecorder(null);
        const clip = new File(chunks, "recording.webm", { type: next.mimeType || "audio/webm" });
        setFile(clip);
        void run(undefined, clip);
      };
      next.start();
      setRecorder(next);
    } catch (e) {
      setError(`cannot record: ${(e as Error).message}`);
    }
  }
  const spaces = useAsync(
    () => gql<{ models: Array<{ space: string | null }> }>(`query { models { space } }`).then((d) => [...new Set(d.models.map((m) => m.space).filter((s): s is string => !!s))]),
    [],
  );

  async function run(event?: FormEvent, dropped: File | null = file) {
    event?.preventDefault();
    if (!dropped && !text.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const fields = await assetFields();
      const query = `query Search($input: SearchInput!) { search(input: $input) { hits { score snippet spaces asset { ${fields} } } } }`;
      const input: Record<string, unknown> = {
        limit: 24,
        modalities: modalities.length ? modalities : null,
        hybrid: hybrid ? { alpha } : null,
        spaceWeights: Object.entries(weights)
          .filter(([, w]) => w !== 1)
          .map(([space, weight]) => ({ space, weight })),
      };
      // Search queries are reads; the multipart upload is how a file reaches the API.
      const data = dropped
        ? await gqlUpload<{ search: { hits: Hit[] } }>(query, { input: { ...input, file: null } }, "input.file", dropped, dropped.name)
        : await gql<{ search: { hits: Hit[] } }>(query, { input: { ...input, text: text.trim() } });
      setHits(data.search.hits);
    } catch (e) {
      setError((e as Error).message);
      setHits(null);
    } finally {
      setBusy(false);
    }
  }

  function drop(event: DragEvent) {
    event.preventDefault();
    const dropped = event.dataTransfer.files[0];
    if (dropped) {
      setFile(dropped);
      void run(undefined, dropped);
    }
  }

  return (
    <>
      <h1>Search</h1>
      <form className="search-form" onSubmit={(e) => run(e)} onDragOver={(e) => e.preventDefault()} onDrop={drop} data-testid="search-form">
        <div className="search-box">
          <label htmlFor="search-text" className="visually-hidden">
            Search text
          </label>
          {file ? (
            <span className="chip">
              {file.name}
              <button type="button" aria-label="Clear the query file" onClick={() => setFile(null)}>
                ×
              </button>
            </span>
          ) : (
            <input id="search-text" type="search" placeholder="Describe what you look for, or drop an image or audio clip here" value={text} onChange={(e) => setText(e.target.value)} />
          )}
          <label className="button secondary">
            File…
            <input
              type="file"
              accept="image/*,audio/*,video/*"
              className="visually-hidden"
              aria-label="Search by a file"
              onChange={(e) => {
                const picked = e.target.files?.[0] ?? null;
                setFile(picked);
                if (picked) void run(undefined, picked);
                e.target.value = "";
              }}
            />
          </label>
          {typeof MediaRecorder !== "undefined" && (
            <button type="button" className={`secondary${recorder ? " recording" : ""}`} onClick={toggleRecording} aria-pressed={!!recorder}>
              {recorder ? "Stop recording" : "Record"}
            </button>
          )}
          <button type="submit" disabled={busy}>
            {busy ? "Searching…" : "Search"}
          </button>
        </div>
        <fieldset className="filters">
          <legend>Modalities</legend>
          {MODALITIES.map((m) => (
            <label key={m}>
              <input
                type="checkbox"
                checked={modalities.includes(m)}
                onChange={(e) => setModalities((list) => (e.target.checked ? [...list, m] : list.filter((x) => x !== m)))}
              />
              {m}
            </label>
          ))}
        </fieldset>
        <fieldset className="filters">
          <legend>Ranking</legend>
          <label>
            <input type="checkbox" checked={hybrid} onChange={(e) => setHybrid(e.target.checked)} />
            Hybrid (BM25 + vectors)
          </label>
          <label>
            Alpha {alpha.toFixed(2)}
            <input type="range" min={0} max={1} step={0.05} value={alpha} disabled={!hybrid} onChange={(e) => setAlpha(Number(e.target.value))} aria-label="Hybrid alpha: 1 vectors only, 0 BM25 only" />
          </label>
          {(spaces.data ?? []).map((space) => (
            <label key={space}>
              {space} weight {(weights[space] ?? 1).toFixed(1)}
              <input
                type="range"
                min={0}
                max={3}
                step={0.1}
                value={weights[space] ?? 1}
                onChange={(e) => setWeights((w) => ({ ...w, [space]: Number(e.target.value) }))}
                aria-label={`Weight of space ${space}`}
              />
            </label>
          ))}
        </fieldset>
      </form>
      {error && <p role="alert" className="error">{error}</p>}
      {hits && hits.length === 0 && <p>No matches.</p>}
      {hits && (
        <ul className="grid" aria-label="Results">
          {hits.map((hit) => (
            <AssetCard
              key={hit.asset.id}
              asset={hit.asset}
              extra={
                <div className="hit-meta">
                  <span className="score" data-testid="score">score {hit.score.toFixed(4)}</span>
                  <span className="spaces">{hit.spaces.join(", ")}</span>
                  {hit.snippet && <q>{hit.snippet}</q>}
                </div>
              }
            />
          ))}
        </ul>
      )}
    </>
  );
}
