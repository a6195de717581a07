import { spawn, type ChildProcess, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from "node:child_process";
import type { Readable } from "node:stream";
import { ErrorCode, TesseraError } from "../core/errors.ts";

export type ToolRun = { stdout: Buffer; stderr: string };

/** Tools still running, by process group: a process that exits (a forced shutdown) takes them with it. */
const runningTools = new Set<ChildProcess>();
let killOnExit = false;

/** Kills a tool started by `spawnInOwnGroup` and whatever it started. */
export function killGroup(child: ChildProcess) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL"); // the group is gone already, or never formed
  }
}

/**
 * Starts an external tool in its own process group. Ctrl-C in a terminal signals the whole foreground group, and
 * a tool that caught it would fail the job in flight (a broken file, a failed speech) while the worker drains:
 * the worker decides when tools stop. The group is killed when this process exits (a forced shutdown).
 */
export function spawnInOwnGroup(command: string, args: string[], stdin: "pipe"): ChildProcessWithoutNullStreams;
export function spawnInOwnGroup(command: string, args: string[], stdin: "ignore"): ChildProcessByStdio<null, Readable, Readable>;
export function spawnInOwnGroup(command: string, args: string[], stdin: "pipe" | "ignore"): ChildProcess {
  const child = spawn(command, args, { stdio: [stdin, "pipe", "pipe"], detached: true });
  if (!killOnExit) {
    killOnExit = true;
    process.on("exit", () => runningTools.forEach(killGroup));
  }
  runningTools.add(child);
  const forget = () => runningTools.delete(child);
  child.once("close", forget);
  child.once("error", forget);
  return child;
}

/** ffmpeg catches SIGINT and SIGTERM and exits with 255; other tools die of the signal. */
function stoppedBySignal(command: string, code: number | null, signal: NodeJS.Signals | null) {
  return signal !== null || (command === "ffmpeg" && code === 255);
}

/**
 * Runs ffmpeg, ffprobe, poppler's pdfinfo/pdftotext or pocketsphinx with an argument array
 * (never a shell line, so a file name cannot inject anything), a time limit
 * and a cap on what it may print.
 */
export function runMediaTool(
  command: "ffmpeg" | "ffprobe" | "pdfinfo" | "pdftotext" | "pocketsphinx_continuous",
  args: string[],
  options: { timeoutMs: number; maxOutputBytes?: number },
): Promise<ToolRun> {
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    // Local files only: a crafted playlist or reference inside a container must not make ffmpeg open a URL (SSRF).
    const safety = command.startsWith("pdf") || command.startsWith("pocketsphinx") ? [] : ["-hide_banner", ...(command === "ffmpeg" ? ["-nostdin"] : []), "-protocol_whitelist", "file,pipe"];
    // Its own process group: a Ctrl-C meant for the worker must not look like a broken file.
    const child = spawnInOwnGroup(command, [...safety, ...args], "ignore");
    const chunks: Buffer[] = [];
    let outputBytes = 0;
    let stderr = "";
    let failure: TesseraError | undefined;
    const stop = (error: TesseraError) => {
      failure ??= error;
      killGroup(child);
    };
    const timer = setTimeout(
      () => stop(new TesseraError(ErrorCode.TIMEOUT, `${command} took longer than ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    child.stdout.on("data", (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > maxOutputBytes) {
        stop(new TesseraError(ErrorCode.PAYLOAD_TOO_LARGE, `${command} produced more than ${maxOutputBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    // Keep only the tail of stderr: it is for error messages, and a broken file can make ffmpeg chatty.
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `cannot run ${command}: ${error.message} (is ${command.startsWith("pdf") ? "poppler-utils" : command.startsWith("pocketsphinx") ? "pocketsphinx" : "ffmpeg"} installed? infra/setup-local.sh installs it)`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      if (stoppedBySignal(command, code, signal)) {
        // Something outside stopped the tool (a shutdown, an operator, the OOM killer): the media may be fine, so retry.
        return reject(
          new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, `${command} was stopped by a signal before it finished; retry later`, {
            tool: command,
            signal: signal ?? "caught (exit status 255)",
          }),
        );
      }
      if (code !== 0) {
        // Server paths are nobody's business but the server's.
        for (const arg of args) if (arg.startsWith("/")) stderr = stderr.replaceAll(arg, "<input>");
        return reject(
          new TesseraError(ErrorCode.CORRUPT_MEDIA, `${command} could not read the media`, { tool: command, stderr: stderr.trim().slice(-500) }),
        );
      }
      resolve({ stdout: Buffer.concat(chunks), stderr });
    });
  });
}
