/**
 * A workflow file as a graph (steps are nodes, `needs` and the steps an
 * expression reads are edges), laid out with elkjs, and the graph's edits
 * written back into the YAML with the yaml library's Document API, which keeps
 * comments and the order of keys.
 */
import ELK from "elkjs/lib/elk.bundled.js";
import { isMap, isSeq, parseDocument, YAMLMap, YAMLSeq, type Document } from "yaml";

export type StepNode = { id: string; uses: string; kind: "map" | "if" | "wait" | "agent" | "workflow" | "step"; label: string };
export type StepEdge = { source: string; target: string; implicit: boolean };
export type ParsedWorkflow = { steps: StepNode[]; edges: StepEdge[]; errors: Array<{ message: string; line: number; column: number; from: number; to: number }> };

const STEP_READ = /steps\.([A-Za-z_][\w-]*)/g;

function kindOf(step: Record<string, unknown>): StepNode["kind"] {
  const uses = String(step.uses ?? "");
  if (uses === "map" || uses === "wait" || uses === "agent" || uses === "workflow") return uses;
  if (step.if !== undefined) return "if";
  return "step";
}

/** Every `steps.<id>` an expression in `value` reads. */
function readsOf(value: unknown, into: Set<string>) {
  if (typeof value === "string") for (const match of value.matchAll(STEP_READ)) into.add(match[1]!);
  else if (Array.isArray(value)) value.forEach((v) => readsOf(v, into));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => readsOf(v, into));
}

export function parseWorkflow(source: string): ParsedWorkflow {
  const doc = parseDocument(source, { prettyErrors: false });
  const errors = doc.errors.map((e) => ({
    message: e.message.split("\n")[0]!,
    line: e.linePos?.[0]?.line ?? 1,
    column: e.linePos?.[0]?.col ?? 1,
    from: e.pos[0],
    to: Math.max(e.pos[1], e.pos[0] + 1),
  }));
  const json = errors.length ? null : (doc.toJS() as { steps?: unknown } | null);
  const rawSteps = Array.isArray(json?.steps) ? (json!.steps as Array<Record<string, unknown>>).filter((s) => s && typeof s === "object") : [];
  const ids = new Set(rawSteps.map((s) => String(s.id ?? "")));
  const steps: StepNode[] = rawSteps.map((s) => ({ id: String(s.id ?? "?"), uses: String(s.uses ?? "?"), kind: kindOf(s), label: String(s.id ?? "?") }));
  const edges: StepEdge[] = [];
  for (const step of rawSteps) {
    const target = String(step.id ?? "");
    const needs = new Set(Array.isArray(step.needs) ? step.needs.map(String) : []);
    for (const source of needs) if (ids.has(source)) edges.push({ source, target, implicit: false });
    const reads = new Set<string>();
    readsOf({ ...step, id: undefined, needs: undefined }, reads);
    for (const source of reads) if (ids.has(source) && source !== target && !needs.has(source)) edges.push({ source, target, implicit: true });
  }
  return { steps, edges, errors };
}

const elk = new ELK();
export const NODE_WIDTH = 180;
export const NODE_HEIGHT = 56;

/** Positions of the nodes, top to bottom in dependency order. */
export async function layout(steps: StepNode[], edges: StepEdge[]): Promise<Record<string, { x: number; y: number }>> {
  const graph = await elk.layout({
    id: "root",
    layoutOptions: { "elk.algorithm": "layered", "elk.direction": "DOWN", "elk.spacing.nodeNode": "40", "elk.layered.spacing.nodeNodeBetweenLayers": "50" },
    children: steps.map((s) => ({ id: s.id, width: NODE_WIDTH, height: NODE_HEIGHT })),
    edges: edges.map((e, i) => ({ id: `e${i}`, sources: [e.source], targets: [e.target] })),
  });
  return Object.fromEntries((graph.children ?? []).map((c) => [c.id, { x: c.x ?? 0, y: c.y ?? 0 }]));
}

function stepsSeq(doc: Document): YAMLSeq {
  let steps = doc.get("steps");
  if (!isSeq(steps)) {
    steps = new YAMLSeq();
    doc.set("steps", steps);
  }
  return steps as YAMLSeq;
}

function stepMap(doc: Document, id: string): YAMLMap | undefined {
  return stepsSeq(doc).items.find((item): item is YAMLMap => isMap(item) && item.get("id") === id);
}

function edit(source: string, change: (doc: Document) => void): string {
  const doc = parseDocument(source);
  if (doc.errors.length) throw new Error("fix the YAML errors first");
  change(doc);
  return doc.toString();
}

/** What a new step of each type starts with: enough to be valid where that is possible. */
const STARTER_WITH: Record<string, unknown> = {
  transform: { value: "${{ inputs }}" },
  wait: { prompt: "Approve?", fields: { approved: { type: "boolean" } } },
  "generate.text": { prompt: "Say hello" },
  http: { url: "https://example.com", method: "GET" },
};

/** Adds a step of type `uses` with a fresh id; returns the new YAML and the id. */
export function addStep(source: string, uses: string): { source: string; id: string } {
  let id = "";
  const next = edit(source, (doc) => {
    const seq = stepsSeq(doc);
    const taken = new Set(seq.items.filter(isMap).map((m) => String(m.get("id"))));
    const base = uses.replace(/[^A-Za-z0-9]+/g, "_");
    for (let n = 1; ; n++) {
      id = `${base}_${n}`;
      if (!taken.has(id)) break;
    }
    seq.add(doc.createNode({ id, uses, with: STARTER_WITH[uses] ?? {} }));
  });
  return { source: next, id };
}

/** `target` needs `source`: adds it to target's `needs`. */
export function connectSteps(source: string, from: string, to: string): string {
  return edit(source, (doc) => {
    const step = stepMap(doc, to);
    if (!step || from === to) return;
    let needs = step.get("needs");
    if (!isSeq(needs)) {
      needs = doc.createNode([]);
      (needs as YAMLSeq).flow = true;
      step.set("needs", needs);
    }
    const seq = needs as YAMLSeq;
    if (!seq.items.some((item) => String((item as { value?: unknown }).value ?? item) === from)) seq.add(from);
  });
}

/** Removes `to`'s need of `from`. */
export function disconnectSteps(source: string, from: string, to: string): string {
  return edit(source, (doc) => {
    const needs = stepMap(doc, to)?.get("needs");
    if (!isSeq(needs)) return;
    needs.items = needs.items.filter((item) => String((item as { value?: unknown }).value ?? item) !== from);
  });
}

/** Deletes a step and every `needs` entry naming it. */
export function deleteStep(source: string, id: string): string {
  return edit(source, (doc) => {
    const seq = stepsSeq(doc);
    seq.items = seq.items.filter((item) => !(isMap(item) && item.get("id") === id));
    for (const item of seq.items) {
      const needs = isMap(item) ? item.get("needs") : undefined;
      if (isSeq(needs)) needs.items = needs.items.filter((n) => String((n as { value?: unknown }).value ?? n) !== id);
    }
  });
}

/** Sets one top-level field of a step (`uses`, `if`, `with` as YAML text). */
export function setStepField(source: string, id: string, field: string, value: unknown): string {
  return edit(source, (doc) => {
    const step = stepMap(doc, id);
    if (!step) return;
    if (value === undefined || value === "") step.delete(field);
    else step.set(field, doc.createNode(value));
  });
}

/** Sets (or, with undefined, removes) one key of a step's `with`, leaving the rest of it and its comments as they are. */
export function setStepWithField(source: string, id: string, key: string, value: unknown): string {
  return edit(source, (doc) => {
    const step = stepMap(doc, id);
    if (!step) return;
    let withMap = step.get("with");
    if (!isMap(withMap)) {
      if (value === undefined) return;
      withMap = new YAMLMap();
      step.set("with", withMap);
    }
    const map = withMap as YAMLMap;
    if (value === undefined) map.delete(key);
    else map.set(key, doc.createNode(value));
  });
}

/** A JSON Schema, as far as the studio reads one. */
export type JsonSchema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  pattern?: string;
};
export type StepTypeSchema = { uses: string; description?: string; with?: JsonSchema };

let stepTypes: Promise<StepTypeSchema[]> | undefined;

/** Each step type and the JSON Schema of its `with`, from the gateway's public /schemas/workflow.json. */
export function loadStepTypes(): Promise<StepTypeSchema[]> {
  stepTypes ??= fetch("/schemas/workflow.json")
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((schema: { properties?: { steps?: { items?: { anyOf?: Array<{ properties?: Record<string, JsonSchema>; description?: string }> } } } }) =>
      (schema.properties?.steps?.items?.anyOf ?? [])
        .map((variant) => ({ uses: String(variant.properties?.uses?.const ?? ""), description: variant.description, with: variant.properties?.with }))
        .filter((t) => t.uses),
    )
    .catch(() => STEP_TYPES.map((uses) => ({ uses })));
  return stepTypes;
}

/** The value type a field takes besides an expression: a `${{ }}` string is always allowed too. */
export function fieldKind(schema: JsonSchema): { type: string; enum?: unknown[] } {
  if (schema.enum) return { type: "enum", enum: schema.enum };
  if (schema.type) return { type: schema.type };
  const plain = (schema.anyOf ?? []).find((s) => !(s.type === "string" && s.pattern?.includes("\\$\\{\\{")));
  return plain ? fieldKind(plain) : { type: "any" };
}

export const STEP_TYPES = [
  "transform",
  "http",
  "mcp.call",
  "wait",
  "map",
  "workflow",
  "ingest",
  "encode",
  "search",
  "search.upsert",
  "speech.segments",
  "generate.text",
  "generate.caption",
  "generate.speech",
  "generate.transcript",
  "generate.image",
  "generate.vqa",
  "agent",
];

export const NEW_WORKFLOW = `apiVersion: tessera/v1
kind: Workflow
slug: my-workflow
name: My workflow
inputs:
  topic: { type: string, description: "What the workflow is about." }
steps:
  - id: title
    uses: transform
    with: { title: "Notes on \${{ inputs.topic }}" }
outputs:
  title: "\${{ steps.title.output.title }}"
`;
