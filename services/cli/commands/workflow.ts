import fs from "node:fs/promises";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { validateWorkflow } from "../../../workflows/dsl/validate-workflow.ts";
import { callGateway, subscribeGateway } from "../gateway-client.ts";

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

type RunEvent = { type: string; stepId?: string; stepKey?: string; status?: string; message?: string; token?: string; output?: unknown; error?: { code: string; message: string } };

const RUN_EVENTS = /* GraphQL */ `
  subscription RunEvents($id: ID!) { runEvents(id: $id) { type stepId stepKey status message token output error { code message } } }
`;

/** Follows the runEvents subscription, calling `onEvent` for each, until the gateway ends it with the run. */
async function followRun(runId: string, onEvent: (event: RunEvent) => void) {
  for await (const { runEvents } of subscribeGateway<{ runEvents: RunEvent }>(RUN_EVENTS, { id: runId })) onEvent(runEvents);
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
        else console.log(`${file}: ok`);
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
      const data = await callGateway<{ publishWorkflow: { slug: string; number: number; createdAt: string } }>(
        `mutation ($d: String!) { publishWorkflow(definition: $d) { slug number createdAt } }`,
        { d: definition },
      );
      console.log(`${data.publishWorkflow.slug} version ${data.publishWorkflow.number}`);
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
      const { runWorkflow: run } = await callGateway<{ runWorkflow: { id: string; status: string; steps: { id: string }[] } }>(
        `mutation ($slug: String!, $input: JSON, $version: Int) { runWorkflow(slug: $slug, input: $input, version: $version) { id status steps { id } } }`,
        { slug, input, version: options.version ? Number(options.version) : undefined },
      );
      if (!options.follow) {
        console.log(run.id);
        return;
      }
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
      await followRun(run.id, (event) => {
        const who = event.stepKey ?? event.stepId ?? "";
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
            break;
          case "LOG":
            say(`  ${who}: ${event.message}`);
            break;
          case "TOKEN":
            if (!bar) process.stderr.write(event.token ?? "");
            break;
        }
      });
      bar?.stop();
      if (!final) throw new Error("the event stream ended before the run did");
      if (final.status === "SUCCEEDED") console.log(JSON.stringify(final.output ?? null, null, 2));
      else {
        console.error(`run ${final.status}: ${final.error?.code ?? ""} ${final.error?.message ?? ""}`);
        process.exitCode = 1;
      }
    });
}
