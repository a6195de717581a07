import type { Asset } from "../api.ts";
import { linkProps } from "../router.ts";

const ICONS: Record<Asset["modality"], string> = { IMAGE: "🖼", AUDIO: "🔊", VIDEO: "🎞", TEXT: "📄" };

/** The asset's media at a glance: the image, an audio player, the video, or the start of its text. */
export function AssetPreview({ asset, large = false }: { asset: Asset; large?: boolean }) {
  const url = asset.contentUrl ?? null;
  const label = asset.filename ?? asset.id;
  const image = large ? url : (asset.thumbnailUrl ?? url);
  const text = (asset.textSpans ?? []).map((s) => s.text).join(" ");
  if (image && asset.modality === "IMAGE") return <img className="thumb" src={image} alt={label} loading="lazy" />;
  if (url && asset.modality === "AUDIO") return <audio className="player" controls preload="none" src={url} aria-label={`Play ${label}`} />;
  if (url && asset.modality === "VIDEO")
    return <video className="thumb" controls={large} muted preload="metadata" src={url} aria-label={label} />;
  if (asset.modality === "TEXT" && text) return <p className={large ? "text-full" : "text-preview"}>{large ? text : text.slice(0, 240)}</p>;
  return (
    <div className="thumb placeholder" aria-hidden="true">
      {ICONS[asset.modality]}
    </div>
  );
}

export function AssetCard({ asset, extra }: { asset: Asset; extra?: React.ReactNode }) {
  return (
    <li className="card" data-asset-id={asset.id} data-status={asset.status}>
      <AssetPreview asset={asset} />
      <a className="card-title" {...linkProps(`assets/${asset.id}`)}>
        {asset.filename ?? asset.id}
      </a>
      <div className="card-meta">
        <span className="badge">{asset.modality}</span>
        <span className={`badge status-${asset.status.toLowerCase()}`}>{asset.status}</span>
      </div>
      {extra}
    </li>
  );
}
