// A stand-in for a worker process, for test/unit/espeak-signals.test.ts: it speaks a long text through the real
// espeak-ng provider and, like runProcess, answers SIGINT by draining. It prints one JSON line when espeak-ng
// is started, then the result (its audio's length) or its error's code.
import { EspeakSpeechProvider } from "../../services/generation/espeak-speech-provider.ts";

const sentences = Number(process.argv[2] ?? "400");
process.on("SIGINT", () => {}); // drain: the speech in flight finishes
const provider = new EspeakSpeechProvider({ name: "espeak" });
const run = provider.speak({ model: "en-us", text: "the quick brown fox jumps over the lazy dog. ".repeat(sentences) });
console.log(JSON.stringify({ started: true }));
run.then(
  (result) => console.log(JSON.stringify({ ok: true, durationSec: result.durationSec })),
  (error) => console.log(JSON.stringify({ ok: false, code: error.code, message: error.message })),
);
