import { useEffect, useState } from "react";
import { gql, type Asset } from "./api.ts";

export type InputSpec = {
  type: "string" | "number" | "integer" | "boolean" | "object" | "array" | "asset";
  description?: string;
  enum?: string[];
  modality?: string;
  required?: boolean;
  default?: unknown;
};

/** Picks an asset of the gallery (of the input's modality when it names one). */
function AssetPicker({ id, modality, value, onChange }: { id: string; modality?: string; value: unknown; onChange: (v: string) => void }) {
  const [assets, setAssets] = useState<Asset[]>([]);
  useEffect(() => {
    gql<{ assets: { edges: Array<{ node: Asset }> } }>(
      `query A($modality: Modality) { assets(first: 100, modality: $modality, status: READY) { edges { node { id filename modality } } } }`,
      { modality: modality ?? null },
    ).then((d) => setAssets(d.assets.edges.map((e) => e.node)), () => setAssets([]));
  }, [modality]);
  return (
    <select id={id} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
      <option value="">Pick an asset…</option>
      {assets.map((a) => (
        <option key={a.id} value={a.id}>
          {a.filename ?? a.id} ({a.modality})
        </option>
      ))}
    </select>
  );
}

/** A form generated from a workflow's `inputs` (or a `wait` step's `fields`): one labelled control per field. */
export function InputForm({ specs, value, onChange }: { specs: Record<string, InputSpec>; value: Record<string, unknown>; onChange: (v: Record<string, unknown>) => void }) {
  const set = (name: string, v: unknown) => {
    const next = { ...value };
    if (v === undefined || v === "") delete next[name];
    else next[name] = v;
    onChange(next);
  };
  return (
    <div className="input-form">
      {Object.entries(specs).map(([name, spec]) => {
        const id = `input-${name}`;
        const current = value[name];
        let control;
        if (spec.type === "boolean")
          control = <input id={id} type="checkbox" checked={current === true} onChange={(e) => set(name, e.target.checked)} />;
        else if (spec.type === "asset") control = <AssetPicker id={id} modality={spec.modality} value={current} onChange={(v) => set(name, v)} />;
        else if (spec.enum)
          control = (
            <select id={id} value={String(current ?? "")} onChange={(e) => set(name, e.target.value)}>
              <option value="">—</option>
              {spec.enum.map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
          );
        else if (spec.type === "number" || spec.type === "integer")
          control = <input id={id} type="number" step={spec.type === "integer" ? 1 : "any"} value={current === undefined ? "" : String(current)} onChange={(e) => set(name, e.target.value === "" ? undefined : Number(e.target.value))} />;
        else if (spec.type === "object" || spec.type === "array")
          control = (
            <textarea
              id={id}
              rows={3}
              defaultValue={current === undefined ? "" : JSON.stringify(current)}
              placeholder={spec.type === "array" ? "[ ... ] as JSON" : "{ ... } as JSON"}
              onBlur={(e) => {
                try {
                  set(name, e.target.value ? JSON.parse(e.target.value) : undefined);
                } catch {
                  /* kept as typed; the server says what is wrong */
                }
              }}
            />
          );
        else control = <input id={id} value={String(current ?? "")} onChange={(e) => set(name, e.target.value)} />;
        return (
          <div key={name} className="field">
            <label htmlFor={id}>
              {name}
              {spec.required === false ? "" : " *"} <small>{spec.type}</small>
            </label>
            {control}
            {spec.description && <small className="hint">{spec.description}</small>}
          </div>
        );
      })}
    </div>
  );
}
