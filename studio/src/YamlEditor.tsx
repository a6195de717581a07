import { autocompletion, type CompletionContext } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, defaultHighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap, lineNumbers } from "@codemirror/view";
import { oneDark } from "@codemirror/theme-one-dark";
import { useEffect, useRef } from "react";
import { STEP_TYPES } from "./workflow-graph.ts";

export type LineProblem = { line: number; column: number; message: string; severity?: "error" | "warning" };

const TOP_KEYS = ["apiVersion", "kind", "slug", "name", "description", "inputs", "steps", "outputs"];
const STEP_KEYS = ["id", "uses", "with", "needs", "if", "retry", "timeout", "onError"];

/** Keys of the workflow format and step types, from where the cursor is. */
function complete(context: CompletionContext) {
  const word = context.matchBefore(/[\w.]*/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  const line = context.state.doc.lineAt(context.pos);
  const before = line.text.slice(0, word.from - line.from);
  if (/uses:\s*$/.test(before)) return { from: word.from, options: STEP_TYPES.map((t) => ({ label: t, type: "type" })) };
  const keys = /^\s*$/.test(before) && before.length === 0 ? TOP_KEYS : STEP_KEYS;
  return { from: word.from, options: keys.map((k) => ({ label: k, apply: `${k}: `, type: "property" })) };
}

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
