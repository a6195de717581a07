import { autocompletion, type CompletionContext } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, hoverTooltip, keymap, lineNumbers } from "@codemirror/view";
import { oneDark } from "@codemirror/theme-one-dark";
import { useEffect, useRef } from "react";
import { loadStepTypes, STEP_TYPES, type StepTypeSchema } from "./workflow-graph.ts";

// Step types and their `with` fields, from the gateway's /schemas/workflow.json, once loaded.
let known: StepTypeSchema[] = STEP_TYPES.map((uses) => ({ uses }));
void loadStepTypes().then((types) => (known = types));

/** The `uses:` of the step the line belongs to: up to the line that starts the list item (`- `), then down through it. */
function stepUsesAt(doc: EditorState["doc"], lineNumber: number): string | undefined {
  const indentOf = (text: string) => text.length - text.trimStart().length;
  const itemStart = (text: string) => /^\s*- /.test(text);
  let start = lineNumber;
  while (start > 1 && !itemStart(doc.line(start).text)) start--;
  if (!itemStart(doc.line(start).text)) return undefined;
  const bodyIndent = indentOf(doc.line(start).text) + 2;
  for (let n = start; n <= doc.lines; n++) {
    const text = doc.line(n).text;
    if (n > start && text.trim() && indentOf(text) < bodyIndent) break;
    const match = /^\s*(?:- )?uses:\s*([\w.]+)/.exec(text);
    if (match) return match[1];
  }
  return undefined;
}

/** Whether the line sits inside a `with:` block (a key more indented than a `with:` line above it in the same step). */
function insideWith(doc: EditorState["doc"], lineNumber: number): boolean {
  const indent = (t: string) => t.length - t.trimStart().length;
  const mine = indent(doc.line(lineNumber).text);
  for (let n = lineNumber - 1; n >= 1; n--) {
    const text = doc.line(n).text;
    if (!text.trim()) continue;
    if (indent(text) < mine) return /^\s*with:\s*$/.test(text);
  }
  return false;
}

export type LineProblem = { line: number; column: number; message: string; severity?: "error" | "warning" };

const TOP_KEYS = ["apiVersion", "kind", "slug", "name", "description", "inputs", "steps", "outputs"];
const STEP_KEYS = ["id", "uses", "with", "needs", "if", "retry", "timeout", "onError"];

/** Keys of the workflow format and step types, from where the cursor is. */
function complete(context: CompletionContext) {
  const word = context.matchBefore(/[\w.]*/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  const line = context.state.doc.lineAt(context.pos);
  const before = line.text.slice(0, word.from - line.from);
  if (/uses:\s*$/.test(before)) return { from: word.from, options: known.map((t) => ({ label: t.uses, type: "type", info: t.description })) };
  if (/uses:\s*$/.test(before)) return null;
  if (insideWith(context.state.doc, line.number)) {
    const uses = stepUsesAt(context.state.doc, line.number);
    const fields = known.find((t) => t.uses === uses)?.with?.properties ?? {};
    return { from: word.from, options: Object.entries(fields).map(([k, schema]) => ({ label: k, apply: `${k}: `, type: "property", info: schema.description })) };
  }
  const keys = before.length === 0 ? TOP_KEYS : STEP_KEYS;
  return { from: word.from, options: keys.map((k) => ({ label: k, apply: `${k}: `, type: "property" })) };
}

/** Hovering a step type shows what it does; hovering a key inside `with` shows that field's description. */
const hover = hoverTooltip((view, pos) => {
  const line = view.state.doc.lineAt(pos);
  const uses = /^(\s*(?:- )?uses:\s*)([\w.]+)/.exec(line.text);
  let text: string | undefined;
  if (uses && pos >= line.from + uses[1]!.length) text = known.find((t) => t.uses === uses[2])?.description;
  else {
    const key = /^\s*([\w]+):/.exec(line.text);
    if (key && insideWith(view.state.doc, line.number)) {
      const type = known.find((t) => t.uses === stepUsesAt(view.state.doc, line.number));
      text = type?.with?.properties?.[key[1]!]?.description;
    }
  }
  if (!text) return null;
  return {
    pos: line.from,
    above: true,
    create: () => {
      const dom = document.createElement("div");
      dom.className = "cm-hover-doc";
      dom.textContent = text!;
      return { dom };
    },
  };
});

/** CodeMirror 6 with YAML: `problems` (client and server, line:col) are shown inline as lint diagnostics. */
export function YamlEditor({ value, onChange, problems }: { value: string; onChange: (value: string) => void; problems: LineProblem[] }) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    view.current = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(),
          history(),
          bracketMatching(),
          // Light or dark as the system is (the rest of the studio follows prefers-color-scheme too).
          matchMedia("(prefers-color-scheme: dark)").matches ? oneDark : syntaxHighlighting(defaultHighlightStyle),
          yaml(),
          autocompletion({ override: [complete] }),
          hover,
          lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.contentAttributes.of({ "aria-label": "Workflow YAML" }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) onChangeRef.current(update.state.doc.toString());
          }),
        ],
      }),
    });
    return () => view.current?.destroy();
    // The editor is made once; `value` changes from outside are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  // Problems (the YAML parser's as you type, the server's after a publish) are pushed in as they change.
  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const diagnostics: Diagnostic[] = problems.map((p) => {
      const line = v.state.doc.line(Math.min(Math.max(p.line, 1), v.state.doc.lines));
      const from = Math.min(line.from + Math.max(p.column - 1, 0), line.to);
      return { from, to: Math.max(line.to, from), severity: p.severity ?? "error", message: p.message };
    });
    v.dispatch(setDiagnostics(v.state, diagnostics));
  }, [problems, value]);

  return <div className="yaml-editor" ref={host} data-testid="yaml-editor" />;
}
