import fs from "node:fs/promises";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { validateWorkflow } from "../../../workflows/dsl/validate-workflow.ts";
import { PublishWorkflowDocument, ResumeRunDocument, RunDocument, type RunEventsSubscription, RunEventsDocument, RunWorkflowDocument } from "../../../packages/client/index.ts";
import { gateway } from "../gateway-client.ts";

/** `--input key=value`: the value is JSON when it parses as JSON (numbers, booleans, lists), else a string. */
export function parseInputs(pairs: string[]): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    if (equals < 1) throw new Error(`--input takes key=value, got "${pair}"`);
    const raw = pair.slice(equals + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    input[pair.slice(0, equals)] = value;
  }
  return input;
}

type RunEvent = RunEventsSubscription["runEvents"];

/** Follows the runEvents subscription, calling `onEvent` for each, until the gateway ends it with the run or `onEvent` says "stop". */
async function followRun(runId: string, onEvent: (event: RunEvent) => "stop" | undefined) {
  for await (const { runEvents } of gateway().subscribe(RunEventsDocument, { id: runId })) if (onEvent(runEvents) === "stop") return;
}

export function registerWorkflowCommands(program: Command) {
  const workflow = program.command("workflow").description("check, publish and run workflow files");

  workflow
    .command("validate")
    .description("check workflow files offline; prints every problem as file:line:col message and exits 1 if any")
    .argument("<files...>", "YAML or JSON workflow files")
    .action(async (files: string[]) => {
      let failed = 0;
      for (const file of files) {
        let text: string;
        try {
          text = await fs.readFile(file, "utf8");
        } catch (error) {
          console.error(`${file}:1:1 cannot read: ${(error as Error).message}`);
          failed++;
          continue;
        }
        const { problems } = validateWorkflow(text);
        for (const problem of problems) console.error(`${file}:${problem.line}:${problem.column} ${problem.message}`);
        if (problems.length) failed++;
        else console.log(`${file}: ok (the models it needs are checked when it is published)`);
      }
      if (failed) process.exitCode = 1;
    });

  workflow
    .command("publish")
    .description("publish a workflow file as a new version (identical content returns the existing version)")
    .argument("<file>", "YAML or JSON workflow file")
    .action(async (file: string) => {
      const definition = await fs.readFile(file, "utf8");
      const { problems } = validateWorkflow(definition);
      if (problems.length) {
        for (const problem of problems) console.error(`${file}:${problem.line}:${problem.column} ${problem.message}`);
        process.exitCode = 1;
        return;
      }
      const data = await gateway().request(PublishWorkflowDocument, { definition });
      console.log(`${data.publishWorkflow.slug} version ${data.publishWorkflow.number}`);
      // Published all the same (the deployment may be configured later), but its runs fail until it is.
      for (const warning of data.publishWorkflow.warnings) console.error(`warning: ${warning}`);
    });

  workflow
    .command("run")
    .description("start a run of a published workflow")
    .argument("<slug>", "the workflow's slug")
    .option("--input <key=value>", "an input (repeatable); JSON values are parsed", (value: string, all: string[]) => [...all, value], [] as string[])
    .option("--version <number>", "run this version instead of the latest")
    .option("--follow", "stream the run's events with a progress display until it ends")
    .action(async (slug: string, options: { input: string[]; version?: string; follow?: boolean }) => {
      const input = parseInputs(options.input);
      const { runWorkflow: run } = await gateway().request(RunWorkflowDocument, { slug, input, version: options.version ? Number(options.version) : undefined });
      if (!options.follow) {
        console.log(run.id);
        return;
      }
      await followWithProgress(run);
    });

  workflow
    .command("resume")
    .description("end a run's waiting `wait` step with an input; the run goes on")
    .argument("<runId>", "the waiting run")
    .option("--step <stepId>", "the waiting step's id (default: the run's one waiting step)")
    .option("--input <key=value>", "a field of the step's output (repeatable); JSON values are parsed", (value: string, all: string[]) => [...all, value], [] as string[])
    .option("--follow", "then follow the run until it ends (or waits again)")
    .action(async (runId: string, options: { step?: string; input: string[]; follow?: boolean }) => {
      let step = options.step;
      if (!step) {
        const { run } = await gateway().request(RunDocument, { id: runId });
        const waiting = run.steps.filter((candidate) => candidate.status === "WAITING");
        if (waiting.length !== 1) {
          throw new Error(`run ${runId} is ${run.status}${waiting.length > 1 ? ` with ${waiting.length} waiting steps` : ""}: name the waiting step with --step`);
        }
        step = waiting[0]!.stepId;
      }
      const { resumeRun: run } = await gateway().request(ResumeRunDocument, { id: runId, stepId: step, input: parseInputs(options.input) });
      if (!options.follow) {
        console.log(`run ${run.id} ${run.status}`);
        return;
      }
      await followWithProgress(run);
    });
}

/**
 * Follows a run with a progress bar (lines without one when stderr is no
 * terminal) until it ends, printing its output. A `wait` step ends the follow
 * with the command that resumes it: nothing else moves the run on.
 */
async function followWithProgress(run: { id: string; status: string; steps: { id: string }[] }) {
  console.error(`run ${run.id}`);
  const interactive = Boolean(process.stderr.isTTY);
  const bar = interactive
    ? new cliProgress.SingleBar({ format: "{bar} {value}/{total} steps | {status}", stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined;
  let total = run.steps.length;
  let done = 0;
  bar?.start(total, 0, { status: run.status });
  // Lines go above the bar: clear the bar's line, print, and draw the bar again.
  const say = (line: string) => {
    if (!bar) return console.error(line);
    process.stderr.write(`\r\x1b[K${line}\n`);
    bar.update(done);
  };
  let final: RunEvent | undefined;
  let waiting: { step: string; message: string | null | undefined } | undefined;
  const reported = new Set<string>();
  await followRun(run.id, (event) => {
    const who = event.stepKey ?? event.stepId ?? "";
    if (["STEP_FINISHED", "STEP_SKIPPED", "STEP_FAILED"].includes(event.type) && event.stepId) reported.add(event.stepId);
    switch (event.type) {
      case "RUN_STATUS":
        bar?.update({ status: event.status });
        if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(event.status ?? "")) final = event;
        else if (!bar) say(`run ${event.status}`);
        break;
      case "STEP_STARTED":
        if (who.includes("[")) bar?.setTotal((total = Math.max(total, done + 1)));
        say(`▶ ${who} started`);
        break;
      case "STEP_FINISHED":
      case "STEP_SKIPPED":
        done++;
        bar?.setTotal((total = Math.max(total, done)));
        bar?.update(done);
        say(`${event.type === "STEP_SKIPPED" ? "↷" : "✔"} ${who} ${event.status?.toLowerCase() ?? ""}`);
        break;
      case "STEP_FAILED":
        say(`✖ ${who} failed: ${event.error?.code} ${event.error?.message}`);
        break;
      case "STEP_RETRYING":
        say(`↻ ${who} will retry: ${event.error?.message}`);
        break;
      case "STEP_WAITING":
        say(`⏸ ${who} waits for resumeRun${event.message ? `: ${event.message}` : ""}`);
        waiting = { step: event.stepId ?? who, message: event.message };
        return "stop";
      case "LOG":
        say(`  ${who}: ${event.message}`);
        break;
      case "TOKEN":
        if (!bar) process.stderr.write(event.token ?? "");
        break;
    }
    return undefined;
  });
  bar?.stop();
  if (waiting) {
    // The run stays WAITING until someone resumes it: say how, and return (exit status 0).
    console.error(
      `run ${run.id} is WAITING at step "${waiting.step}". Resume it with:\n` +
        `  tessera workflow resume ${run.id} --step ${waiting.step} --input key=value --follow`,
    );
    return;
  }
  if (!final) throw new Error("the event stream ended before the run did");
  // A run can end before the subscription starts (steps without side effects finish inside the advance that
  // readies them): the steps whose end the stream did not show are read from the run.
  const { run: ended } = await gateway().request(RunDocument, { id: run.id });
  for (const step of ended.steps) {
    if (reported.has(step.stepId) || !["SUCCEEDED", "SKIPPED", "FAILED", "CANCELLED"].includes(step.status)) continue;
    console.error(`${step.status === "SUCCEEDED" ? "✔" : step.status === "SKIPPED" ? "↷" : "✖"} ${step.stepId} ${step.status.toLowerCase()}`);
  }
  if (final.status === "SUCCEEDED") console.log(JSON.stringify(final.output ?? null, null, 2));
  else {
    console.error(`run ${final.status}: ${final.error?.code ?? ""} ${final.error?.message ?? ""}`);
    process.exitCode = 1;
  }
}
