// The child-process side of the expression pool (expression-pool.ts): plain
// JavaScript, so it loads the same under tsx, vitest and a bundled build.
// Evaluates JSONata bodies against a scope and sends back each result as JSON
// text. Before each body it tells the parent which body it is on: the parent
// enforces a deadline per expression from that (and names the expression),
// and kills this process when it passes, however stuck it is. Its heap is
// capped by --max-old-space-size: past it this process dies, not the parent.
import jsonata from "jsonata";

const compiled = new Map();
function compile(body) {
  let expression = compiled.get(body);
  if (!expression) {
    expression = jsonata(body);
    if (compiled.size > 5000) compiled.clear();
    compiled.set(body, expression);
  }
  return expression;
}

/** JSONata's own "stack overflow" code, and V8's: recursion that went too deep. */
function isStackOverflow(error) {
  return error?.code === "U1001" || (error instanceof RangeError && /call stack/i.test(error.message));
}

/**
 * task: { id, bodies: string[], scope, variants: object[] | null, maxResultBytes }
 * Answers { type: "result", id, results: string[][] } (JSON per variant per body), or
 * { type: "result", id, error: { index, kind: "expression" | "size" | "stack", message, bytes? } }.
 */
async function evaluateExpressions(task) {
  const variants = task.variants ?? [{}];
  const results = [];
  let index = 0;
  for (const variant of variants) {
    const scope = { ...task.scope, ...variant };
    const row = [];
    for (const body of task.bodies) {
      const cpu = process.cpuUsage();
      process.send({ type: "progress", id: task.id, index, cpu: cpu.user + cpu.system });
      let value;
      try {
        value = await compile(body).evaluate(scope);
      } catch (error) {
        const kind = isStackOverflow(error) ? "stack" : "expression";
        return { error: { index, kind, message: error?.message ?? String(error) } };
      }
      // Functions and undefined read as null; JSON drops JSONata's sequence markers.
      const json = typeof value === "function" ? "null" : (JSON.stringify(value) ?? "null");
      if (json.length > task.maxResultBytes) return { error: { index, kind: "size", bytes: json.length, message: "result too large" } };
      row.push(json);
      index++;
    }
    results.push(row);
  }
  return { results };
}

process.on("message", async (task) => {
  const outcome = await evaluateExpressions(task);
  process.send({ type: "result", id: task.id, ...outcome });
});
// The parent went away: nothing is left to answer.
process.on("disconnect", () => process.exit(0));
// A terminal's Ctrl-C, its hang-up, or a deploy's SIGTERM reaches the whole process group: this process is the
// parent's helper, and the parent ends it (or it ends when the parent's channel closes), so it finishes what it is
// evaluating while the parent drains.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => {});
process.send({ type: "ready" });
