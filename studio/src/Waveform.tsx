import { useEffect, useRef, useState } from "react";

/** The audio's waveform (peak per pixel column), decoded in the browser with Web Audio from the asset's URL. */
export function Waveform({ url, label }: { url: string; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    const context = new AudioContext();
    fetch(url)
      .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((bytes) => context.decodeAudioData(bytes))
      .then((audio) => {
        const c = canvas.current;
        if (!live || !c) return;
        const samples = audio.getChannelData(0);
        const g = c.getContext("2d")!;
        const { width, height } = c;
        g.clearRect(0, 0, width, height);
        g.fillStyle = getComputedStyle(c).color;
        const step = Math.max(1, Math.floor(samples.length / width));
        for (let x = 0; x < width; x++) {
          let peak = 0;
          for (let i = x * step; i < Math.min((x + 1) * step, samples.length); i++) peak = Math.max(peak, Math.abs(samples[i]!));
          const h = Math.max(1, peak * height);
          g.fillRect(x, (height - h) / 2, 1, h);
        }
      })
      .catch(() => live && setFailed(true))
      .finally(() => void context.close());
    return () => {
      live = false;
    };
  }, [url]);
  if (failed) return null;
  return <canvas ref={canvas} className="waveform" width={600} height={80} role="img" aria-label={`Waveform of ${label}`} />;
}
