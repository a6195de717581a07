import { killGroup, spawnInOwnGroup } from "../assets/media-tool.ts";
import type { LanguageModelProvider, SpeechRequest, SpeechResult } from "./language-model-provider.ts";
import { providerError } from "./provider-error.ts";
import { readWavInfo, withExactWavSizes } from "./wav-file.ts";

const VOICE = /^[a-z0-9][a-z0-9+_-]{0,40}$/i;

/**
 * Offline speech out with espeak-ng (Debian package). The model of an alias
 * is the voice (`en-us`, `de`, `en-us+f3`); text goes in on stdin, a WAV
 * comes out on stdout.
 */
export class EspeakSpeechProvider implements LanguageModelProvider {
  readonly name: string;
  private readonly binary: string;

  constructor(options: { name: string; binary?: string }) {
    this.name = options.name;
    this.binary = options.binary ?? "espeak-ng";
  }

  async speak(request: SpeechRequest): Promise<SpeechResult> {
    const voice = request.voice ?? request.model;
    if (!VOICE.test(voice)) throw providerError("bad_request", `"${voice}" is not an espeak-ng voice name`, { provider: this.name });
    const args = ["--stdout", "--stdin", "-v", voice];
    if (request.speed) args.push("-s", String(Math.round(Math.max(80, Math.min(450, request.speed)))));
    const wav = withExactWavSizes(await this.run(args, request.text, request.signal));
    const info = readWavInfo(wav);
    if (info.dataBytes === 0) throw providerError("bad_request", "espeak-ng produced no audio for this text", { provider: this.name });
    return { bytes: wav, mimeType: "audio/wav", durationSec: info.durationSec };
  }

  private run(args: string[], input: string, signal?: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      // Its own process group (as ffmpeg's): a Ctrl-C meant for the worker must not fail the speech in flight.
      const child = spawnInOwnGroup(this.binary, args, "pipe");
      const abort = () => killGroup(child);
      if (signal?.aborted) abort();
      signal?.addEventListener("abort", abort, { once: true });
      child.once("close", () => signal?.removeEventListener("abort", abort));
      const out: Buffer[] = [];
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") {
          reject(providerError("unsupported", "espeak-ng is not installed (apt-get install espeak-ng)", { provider: this.name }));
        } else reject(error);
      });
      child.on("close", (code, stopSignal) => {
        if (code === 0) return resolve(Buffer.concat(out));
        if (signal?.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error("the speech was cancelled"));
        // Killed from outside (a shutdown, the OOM killer): the text is fine, another try may work.
        if (stopSignal) return reject(providerError("server", `espeak-ng was stopped by ${stopSignal} before it finished`, { provider: this.name }));
        reject(providerError("bad_request", `espeak-ng failed (exit ${code}): ${stderr.trim().slice(0, 200)}`, { provider: this.name }));
      });
      child.stdin.on("error", () => {}); // a voice error closes stdin early; the exit code tells the story
      child.stdin.end(input);
    });
  }
}
