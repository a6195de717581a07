import { useEffect, useRef, useState, type DragEvent } from "react";
import { assetFields, gql, gqlUpload, INGEST, JOBS_EVENTS, MAX_JOBS_PER_STREAM, subscribe, type Asset } from "../api.ts";
import { batchedFollower, limiter } from "../job-batches.ts";
import { useAsync } from "../use-async.ts";
import { AssetCard } from "./AssetCard.tsx";

type Upload = { name: string; phase: "uploading" | "processing" | "ready" | "failed"; progress: number; message?: string; assetId?: string };
type JobsEvent = { jobsEvents: { jobId: string; status: string; progress: number; message: string | null; error: { code: string; message: string } | null } };

const MODALITIES = ["IMAGE", "AUDIO", "VIDEO", "TEXT"];

const uploadSlots = limiter(2);
/** Open `jobsEvents` streams: each holds a connection, however many jobs it follows. */
const streamSlots = limiter(3);
const STATUSES = ["READY", "PENDING", "PROCESSING", "FAILED"];

/** Drag-and-drop (or pick) many files; each gets a bar: bytes sent, then the ingest job's progress from `jobsEvents`. */
function UploadZone({ onDone }: { onDone: () => void }) {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const stops = useRef<Array<() => void>>([]);
  useEffect(() => () => stops.current.forEach((stop) => stop()), []);

  const update = (index: number, change: Partial<Upload>) =>
    setUploads((list) => list.map((u, i) => (i === index ? { ...u, ...change } : u)));

  /** Takes each sent file's job (with its upload's index) into the next stream's batch; made once: what it calls (setUploads, onDone) never changes. */
  const followJob = useRef<(jobId: string, index: number) => void>(undefined);
  followJob.current ??= batchedFollower<number>(streamSlots, MAX_JOBS_PER_STREAM, (batch, release) => followBatch(batch, release));
  const count = useRef(0);
  function start(files: File[]) {
    const first = count.current;
    count.current += files.length;
    setUploads((list) => [...list, ...files.map((file) => ({ name: file.name, phase: "uploading" as const, progress: 0 }))]);
    files.forEach((file, n) => void send(file, first + n));
  }

  async function send(file: File, index: number) {
    let ingest: { asset: { id: string }; job: { id: string } };
    const releaseUpload = await uploadSlots.acquire();
    try {
      ({ ingest } = await gqlUpload<{ ingest: { asset: { id: string }; job: { id: string } } }>(
        INGEST,
        { file: null },
        "file",
        file,
        file.name,
        (fraction) => update(index, { progress: fraction * 0.3 }),
      ));
    } catch (error) {
      update(index, { phase: "failed", message: (error as Error).message });
      return;
    } finally {
      releaseUpload();
    }
    update(index, { phase: "processing", progress: 0.3, assetId: ingest.asset.id, message: "queued" });
    onDone();
    followJob.current!(ingest.job.id, index);
  }

  /**
   * Follows a batch of jobs (job id -> upload index) on one `jobsEvents` stream: every job whose file was sent by
   * the time a stream slot was free (job-batches.ts). The stream starts with each job's state now, so a job that
   * finished while waiting is seen at once, and ends when all its jobs have.
   */
  function followBatch(batch: Map<string, number>, release: () => void) {
    const stop = subscribe<JobsEvent>(JOBS_EVENTS, { ids: [...batch.keys()] }, {
      onData: ({ jobsEvents: event }) => {
        const index = batch.get(event.jobId);
        if (index === undefined) return;
        if (event.status === "SUCCEEDED") {
          batch.delete(event.jobId);
          update(index, { phase: "ready", progress: 1, message: "READY" });
          onDone();
        } else if (event.status === "FAILED" || event.status === "CANCELLED") {
          batch.delete(event.jobId);
          update(index, { phase: "failed", message: event.error?.message ?? event.status });
          onDone();
        } else update(index, { progress: 0.3 + 0.7 * event.progress, message: event.message ?? event.status });
      },
      onError: (error) => {
        release();
        // The batch's jobs not finished yet: a finished one leaves it.
        for (const index of batch.values()) update(index, { message: `live progress lost: ${error.message}` });
      },
      onComplete: release,
    });
    stops.current.push(() => {
      stop();
      release();
    });
  }

  function drop(event: DragEvent) {
    event.preventDefault();
    setOver(false);
    const files = [...event.dataTransfer.files];
    if (files.length) start(files);
  }

  return (
    <section aria-label="Upload">
      <div
        className={`dropzone${over ? " over" : ""}`}
        data-testid="upload-dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={drop}
      >
        <p>Drop files here to upload them, or</p>
        <label className="button">
          Choose files
          <input
            ref={input}
            type="file"
            multiple
            className="visually-hidden"
            aria-label="Choose files to upload"
            onChange={(e) => {
              const files = [...(e.target.files ?? [])];
              if (files.length) start(files);
              e.target.value = "";
            }}
          />
        </label>
      </div>
      {uploads.length > 0 && (
        <ul className="uploads" aria-label="Uploads">
          {uploads.map((u, i) => (
            <li key={i} data-phase={u.phase}>
              <span className="upload-name">{u.name}</span>
              <progress max={1} value={u.progress} aria-label={`Progress of ${u.name}`} />
              <span className="upload-state">{u.phase === "uploading" ? "uploading" : (u.message ?? u.phase)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function Assets() {
  const [modality, setModality] = useState("");
  const [status, setStatus] = useState("");
  const [tag, setTag] = useState("");
  const assets = useAsync(async () => {
    const fields = await assetFields();
    const data = await gql<{ assets: { edges: Array<{ node: Asset }> } }>(
      `query Assets($modality: Modality, $status: AssetStatus) { assets(first: 60, modality: $modality, status: $status) { edges { node { ${fields} } } } }`,
      { modality: modality || null, status: status || null },
    );
    return data.assets.edges.map((e) => e.node);
  }, [modality, status]);
  const reload = assets.reload;
  // Assets still being ingested change state: look again until none is.
  const pending = assets.data?.some((a) => a.status === "PENDING" || a.status === "PROCESSING");
  useEffect(() => {
    if (!pending) return;
    const timer = setTimeout(reload, 2000);
    return () => clearTimeout(timer);
  }, [pending, assets.data, reload]);

  const shown = (assets.data ?? []).filter((a) => !tag || a.tags.includes(tag));
  return (
    <>
      <h1>Assets</h1>
      <UploadZone onDone={reload} />
      <form className="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Modality
          <select value={modality} onChange={(e) => setModality(e.target.value)}>
            <option value="">All</option>
            {MODALITIES.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Tag
          <input value={tag} onChange={(e) => setTag(e.target.value.trim())} placeholder="any" />
        </label>
      </form>
      {assets.error && <p role="alert" className="error">{assets.error.message}</p>}
      {assets.data && shown.length === 0 && <p>No assets yet: drop some files above.</p>}
      <ul className="grid" aria-label="Gallery">
        {shown.map((asset) => (
          <AssetCard key={asset.id} asset={asset} />
        ))}
      </ul>
    </>
  );
}
