/**
 * What every entry point does before anything else (and before its heavy imports): read `.env`, answer
 * `--help` and `--version`, and refuse a bad argument with the usage instead of a stack trace.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import dotenv from "dotenv";

/** sysexits.h: the command was used incorrectly. */
export const EX_USAGE = 64;

/** package.json's version. */
export function tesseraVersion(): string {
  const file = path.resolve(import.meta.dirname, "..", "..", "package.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/**
 * `.env` in the working directory, if there is one, fills in variables the environment does not set: a real
 * variable always wins (as in docker compose and Kubernetes, where `.env` is absent anyway).
 */
export function loadDotEnv(cwd = process.cwd()) {
  dotenv.config({ path: path.join(cwd, ".env"), quiet: true, override: false });
}

/** For entry points that take no arguments. */
export function noArguments(argv: string[]): void {
  if (argv.length > 0) throw new Error(`unexpected argument: ${argv[0]}`);
}

/**
 * Parses an entry point's arguments with `parse`. `--help` (or `-h`) prints `usage` to stdout and exits 0,
 * `--version` prints the version; when `parse` throws, its message and the usage go to stderr, exit 64.
 */
export function parseCommandLine<T>(usage: string, parse: (argv: string[]) => T, argv = process.argv.slice(2)): T {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  if (argv.includes("--version")) {
    process.stdout.write(`${tesseraVersion()}\n`);
    process.exit(0);
  }
  try {
    return parse(argv);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${usage.trim()}\n`);
    process.exit(EX_USAGE);
  }
}
