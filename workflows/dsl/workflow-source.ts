import { isNode, LineCounter, parseDocument, type Document } from "yaml";
import { workflowLimits } from "../workflow-limits.ts";

export type SourcePath = (string | number)[];

/** One thing wrong with a workflow file, where it is. */
export type Problem = { line: number; column: number; path: string; message: string };

/**
 * A workflow file parsed with positions kept: YAML or JSON (JSON is read as
 * YAML, so both get line and column). Guarded against huge files and alias
 * expansion ("billion laughs").
 */
export class WorkflowSource {
  readonly problems: Problem[] = [];
  value: unknown;
  private readonly lineCounter = new LineCounter();
  private document?: Document.Parsed;

  constructor(readonly text: string) {
    const limits = workflowLimits();
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > limits.WORKFLOW_MAX_BYTES) {
      this.problems.push({ line: 1, column: 1, path: "", message: `the file is ${bytes} bytes; the limit is ${limits.WORKFLOW_MAX_BYTES}` });
      return;
    }
    const document = parseDocument(text, { lineCounter: this.lineCounter, prettyErrors: false, uniqueKeys: true });
    for (const error of document.errors) {
      const position = this.lineCounter.linePos(error.pos[0]);
      this.problems.push({ line: position.line, column: position.col, path: "", message: error.message.split("\n")[0]! });
    }
    if (document.errors.length) return;
    try {
      this.value = document.toJS({ maxAliasCount: limits.WORKFLOW_MAX_ALIASES });
    } catch (error) {
      this.problems.push({ line: 1, column: 1, path: "", message: `YAML aliases expand too far: ${(error as Error).message}` });
      return;
    }
    this.document = document;
  }

  /** Line and column of the node at `path`, or of its nearest existing parent. */
  locate(path: SourcePath): { line: number; column: number } {
    if (!this.document) return { line: 1, column: 1 };
    for (let length = path.length; length >= 0; length--) {
      const node = length === 0 ? this.document.contents : this.document.getIn(path.slice(0, length), true);
      if (isNode(node) && node.range) {
        const position = this.lineCounter.linePos(node.range[0]);
        return { line: position.line, column: position.col };
      }
    }
    return { line: 1, column: 1 };
  }

  /**
   * Line and column of the `occurrence`-th `needle` inside the scalar at
   * `path`, as written; the scalar's own position when it cannot be found.
   */
  locateWithin(path: SourcePath, needle: string, occurrence: number): { line: number; column: number } {
    const node = this.document?.getIn(path, true);
    if (isNode(node) && node.range) {
      let at = node.range[0] - 1;
      for (let seen = 0; seen <= occurrence; seen++) {
        at = this.text.indexOf(needle, at + 1);
        if (at < 0 || at >= node.range[1]) return this.locate(path);
      }
      const position = this.lineCounter.linePos(at);
      return { line: position.line, column: position.col };
    }
    return this.locate(path);
  }

  report(path: SourcePath, message: string) {
    this.problems.push({ ...this.locate(path), path: formatPath(path), message });
  }
}

export function formatPath(path: SourcePath): string {
  return path.map((part, index) => (typeof part === "number" ? `[${part}]` : index === 0 ? part : `.${part}`)).join("");
}

/**
 * Line and column of the `${{` that opens `body` inside the scalar at `path`
 * of a workflow file's text: where a run-time error about that expression points.
 */
export function expressionPosition(text: string, path: SourcePath, body: string): { line: number; column: number } {
  const source = new WorkflowSource(text);
  let value: unknown = source.value;
  for (const part of path) value = value && typeof value === "object" ? (value as Record<string | number, unknown>)[part] : undefined;
  if (typeof value !== "string") return source.locate(path);
  const opening = value.indexOf(body);
  const occurrence = opening < 0 ? 0 : value.slice(0, opening).split("${{").length - 2;
  return source.locateWithin(path, "${{", Math.max(0, occurrence));
}
