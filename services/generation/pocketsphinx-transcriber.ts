import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runMediaTool } from "../assets/media-tool.ts";
import type { LanguageModelProvider, TextResult, TranscribeRequest } from "./language-model-provider.ts";
import { providerError } from "./provider-error.ts";
import { encodeWav } from "./wav-file.ts";

/** Where Debian's pocketsphinx-en-us puts the US English model, its dictionary and its phone language model. */
export const POCKETSPHINX_MODEL_DIR = "/usr/share/pocketsphinx/model/en-us";

/** A recognised word or phone with its place in the audio, in seconds. */
export type TimedToken = { token: string; start: number; end: number };

export type SpeechRecognition = {
  /** Words with times, fillers and silences left out. */
  words: TimedToken[];
  /** Context-independent phones (CMU set, as in cmudict) with times; SIL left out. Present when asked for. */
  phones?: TimedToken[];
};

const TIMED_LINE = /^(\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\S+)$/;
/** Markers pocketsphinx puts around and between words: utterance bounds, silence, noise. */
const NOT_A_WORD = /^(<s>|<\/s>|<sil>|\[[A-Z_]+\]|\+\+.*\+\+|SIL|NSN|SPN)$/i;

/**
 * Offline speech recognition with CMU pocketsphinx (Debian's `pocketsphinx`
 * and `pocketsphinx-en-us`), run as a child process in its own process group
 * with a time limit. Words come from the default trigram model; phones (asked
 * with `phones: true`) from the phone decoder, which stays close to what was
 * said where the word model guesses wrong (synthetic voices, rare words), so
 * search can match a query's pronunciation against them.
 */
export async function recognizeSpeech(
  samples: Float32Array,
  options: { timeoutMs: number; phones?: boolean; modelDir?: string },
): Promise<SpeechRecognition> {
  if (samples.length === 0) return { words: [], ...(options.phones ? { phones: [] } : {}) };
  const modelDir = options.modelDir ?? POCKETSPHINX_MODEL_DIR;
  const folder = await mkdtemp(path.join(os.tmpdir(), "tessera-asr-"));
  try {
    const wav = path.join(folder, "clip.wav");
    await writeFile(wav, encodeWav(withNoiseFloor(samples), 16000));
    // Phones: context-independent (-allphone_ci; the triphone search is 30 times slower and no better here) with a
    // light phone language model (-lw 2), which gave the fewest phone errors on espeak-ng voices (bench/README.md).
    const common = ["-infile", wav, "-samprate", "16000", "-time", "yes", "-logfn", "/dev/null"];
    const [words, phones] = await Promise.all([
      runMediaTool("pocketsphinx_continuous", [...common, "-hmm", path.join(modelDir, "en-us"), "-lm", path.join(modelDir, "en-us.lm.bin"), "-dict", path.join(modelDir, "cmudict-en-us.dict")], {
        timeoutMs: options.timeoutMs,
        maxOutputBytes: 16 * 1024 * 1024,
      }),
      options.phones
        ? runMediaTool("pocketsphinx_continuous", [...common, "-hmm", path.join(modelDir, "en-us"), "-allphone", path.join(modelDir, "en-us-phone.lm.bin"), "-allphone_ci", "yes", "-lw", "2"], {
            timeoutMs: options.timeoutMs,
            maxOutputBytes: 16 * 1024 * 1024,
          })
        : undefined,
    ]);
    return {
      words: timedTokens(words.stdout.toString("utf8")).map((word) => ({ ...word, token: word.token.replace(/\(\d+\)$/, "") })),
      ...(phones ? { phones: timedTokens(phones.stdout.toString("utf8")) } : {}),
    };
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}

/**
 * Digital silence (synthetic speech, padded tracks) throws off pocketsphinx's noise and feature normalisation:
 * whole utterances came back as silence. A fixed, seeded noise floor near -80 dBFS (a few steps of 16-bit) keeps it
 * steady; pocketsphinx's own -dither is random per run, so results would change from run to run.
 */
function withNoiseFloor(samples: Float32Array): Float32Array {
  const out = new Float32Array(samples.length);
  let seed = 0x2545f491;
  for (let index = 0; index < samples.length; index++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    out[index] = samples[index]! + ((seed >>> 0) / 0xffffffff - 0.5) * 2e-4;
  }
  return out;
}

/** The `token start end confidence` lines of `-time yes` output, markers left out. */
function timedTokens(output: string): TimedToken[] {
  const tokens: TimedToken[] = [];
  for (const line of output.split("\n")) {
    const match = TIMED_LINE.exec(line.trim());
    if (!match || NOT_A_WORD.test(match[1]!)) continue;
    tokens.push({ token: match[1]!, start: Number(match[2]), end: Number(match[3]) });
  }
  return tokens;
}

/** Words into segments: a new one after a pause of `gapSec` or once one spans `maxSec`. */
export function wordSegments(words: TimedToken[], options: { gapSec?: number; maxSec?: number } = {}): Array<{ text: string; start: number; end: number }> {
  const gapSec = options.gapSec ?? 0.6;
  const maxSec = options.maxSec ?? 8;
  const segments: Array<{ text: string; start: number; end: number; words: string[] }> = [];
  for (const word of words) {
    const last = segments.at(-1);
    if (last && word.start - last.end < gapSec && word.end - last.start <= maxSec) {
      last.words.push(word.token);
      last.end = word.end;
    } else segments.push({ text: "", start: word.start, end: word.end, words: [word.token] });
  }
  return segments.map(({ words: tokens, start, end }) => ({ text: tokens.join(" "), start, end }));
}

/**
 * The offline transcriber behind the built-in `transcribe.offline` alias: it
 * answers where no Whisper export or transcription server is configured.
 * The alias's model names the pocketsphinx model folder's language (`en-us`).
 */
export class PocketsphinxProvider implements LanguageModelProvider {
  readonly name: string;
  private readonly modelDir: string;

  constructor(options: { name: string; modelDir?: string }) {
    this.name = options.name;
    this.modelDir = options.modelDir ?? POCKETSPHINX_MODEL_DIR;
  }

  async transcribe(request: TranscribeRequest): Promise<TextResult> {
    if (request.model !== "en-us") throw providerError("bad_request", `pocketsphinx has only the en-us model, not "${request.model}"`, { provider: this.name });
    request.signal?.throwIfAborted();
    const { words } = await recognizeSpeech(request.audio.samples, { timeoutMs: 10 * 60_000, modelDir: this.modelDir });
    return { text: words.map((word) => word.token).join(" "), words: words.map((word) => ({ text: word.token, start: word.start, end: word.end })) };
  }
}
