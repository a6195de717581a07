// A stand-in for a worker process, for test/unit/media-tool-signals.test.ts: it runs one long ffmpeg
// through the real media tool and, like runProcess, answers SIGINT by draining (argv[2] "drain")
// or by exiting at once ("exit"). It prints one JSON line: the tool's result or its error's code.
import { runMediaTool } from "../../services/assets/media-tool.ts";

const mode = process.argv[2] ?? "drain";
const seconds = process.argv[3] ?? "3";
process.on("SIGINT", () => {
  if (mode === "exit") process.exit(0);
});
const run = runMediaTool("ffmpeg", ["-v", "error", "-re", "-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`, "-f", "null", "-"], {
  timeoutMs: 60_000,
});
console.log(JSON.stringify({ started: true }));
run.then(
  () => console.log(JSON.stringify({ ok: true })),
  (error) => console.log(JSON.stringify({ ok: false, code: error.code })),
);
