import type { Command } from "commander";
import {
  CancelJobDocument,
  GenerateDocument,
  type GenerateInput,
  type GenerateTask,
  JobDocument,
  JobEventsDocument,
  type JobKind,
  type JobStatus,
  JobsDocument,
  type JobsQuery,
} from "../../../packages/client/index.ts";
import { gateway, GatewayUnreachableError } from "../gateway-client.ts";

const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

type JobNode = JobsQuery["jobs"]["edges"][number]["node"];

function jobLine(job: JobNode): string {
  return [job.id, job.kind, job.status, `${Math.round(job.progress * 100)}%`, job.createdAt, job.error ? `${job.error.code}: ${job.error.message}` : ""].join("\t");
}

export function registerJobsCommands(program: Command) {
  const jobs = program.command("jobs").description("the project's ingest and generation jobs, through the gateway (TESSERA_URL, TESSERA_API_KEY)");
  jobs
    .command("list")
    .description("jobs, newest first: id, kind, status, progress, created, error")
    .option("--kind <kind>", "only INGEST or GENERATE jobs")
    .option("--status <status>", "only QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED jobs")
    .option("--limit <n>", "at most this many", "50")
    .option("--json", "one JSON object per job")
    .action(async (options: { kind?: string; status?: string; limit: string; json?: boolean }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new Error("--limit takes a whole number above 0");
      const filter = {
        ...(options.kind ? { kind: options.kind.toUpperCase() as JobKind } : {}),
        ...(options.status ? { status: options.status.toUpperCase() as JobStatus } : {}),
      };
      const nodes: JobNode[] = [];
      let after: string | null = null;
      let total = 0;
      do {
        const page: JobsQuery = await gateway().request(JobsDocument, { ...filter, first: Math.min(100, limit - nodes.length), after });
        total = page.jobs.totalCount;
        nodes.push(...page.jobs.edges.map((edge) => edge.node));
        after = page.jobs.pageInfo.hasNextPage ? page.jobs.pageInfo.endCursor : null;
      } while (after && nodes.length < limit);
      for (const job of nodes) console.log(options.json ? JSON.stringify(job) : jobLine(job));
      console.error(`${nodes.length} of ${total} jobs`);
    });

  jobs
    .command("get")
    .description("one job as JSON (status, progress, output, usage, error)")
    .argument("<id>", "the job's id")
    .action(async (id: string) => {
      const { job } = await gateway().request(JobDocument, { id });
      console.log(JSON.stringify(job, null, 2));
    });

  jobs
    .command("cancel")
    .description("cancel a QUEUED job (CONFLICT once it runs or has finished)")
    .argument("<id>", "the job's id")
    .action(async (id: string) => {
      const { cancelJob } = await gateway().request(CancelJobDocument, { id });
      console.log(`${cancelJob.id} ${cancelJob.status}`);
    });

  const collect = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command("generate")
    .description("generate text (streamed), a caption, speech, a transcript or an image; waits for the job and prints its output")
    .argument("[prompt]", "what to answer, say or draw")
    .option("--task <task>", "TEXT, CAPTION, SPEECH, TRANSCRIPT or IMAGE", "TEXT")
    .option("--model <name>", "a model (see `tessera models list`)")
    .option("--system <text>", "a system prompt")
    .option("--attach <assetId>", "an asset the model sees (repeatable)", collect)
    .option("--max-tokens <n>", "at most this many tokens")
    .option("--temperature <t>", "sampling temperature")
    .option("--voice <voice>", "SPEECH: the voice")
    .option("--size <WxH>", "IMAGE: the size")
    .option("--no-wait", "print the job's id and return at once")
    .action(async (prompt: string | undefined, options: GenerateOptions) => {
      const input: GenerateInput = {
        task: options.task.toUpperCase() as GenerateTask,
        ...(prompt !== undefined ? { prompt } : {}),
        ...(options.model ? { model: options.model } : {}),
        ...(options.system ? { system: options.system } : {}),
        ...(options.attach ? { attachments: options.attach } : {}),
        ...(options.maxTokens ? { maxTokens: Number(options.maxTokens) } : {}),
        ...(options.temperature ? { temperature: Number(options.temperature) } : {}),
        ...(options.voice ? { voice: options.voice } : {}),
        ...(options.size ? { size: options.size } : {}),
      };
      const { generate: job } = await gateway().request(GenerateDocument, { input });
      if (!options.wait) {
        console.log(job.id);
        return;
      }
      console.error(`job ${job.id}`);
      // Tokens as they come (TEXT); the finished job's output after, unless the tokens already were it.
      let streamed = "";
      let status = job.status as string;
      for await (const { jobEvents: event } of gateway().subscribe(JobEventsDocument, { id: job.id })) {
        if (event.token) {
          streamed += event.token;
          process.stdout.write(event.token);
        }
        status = event.status;
        if (FINISHED.has(event.status)) break;
      }
      if (!FINISHED.has(status)) throw new GatewayUnreachableError(`the gateway ended the events of job ${job.id} before the job finished`, "the event stream ended");
      const { job: finished } = await gateway().request(JobDocument, { id: job.id });
      if (finished.status !== "SUCCEEDED") {
        if (streamed) process.stdout.write("\n");
        console.error(`job ${finished.status}: ${finished.error?.code ?? ""} ${finished.error?.message ?? ""}`);
        process.exitCode = 1;
        return;
      }
      const output = finished.output;
      if (streamed) process.stdout.write("\n");
      else {
        // TEXT, CAPTION and TRANSCRIPT answer { text, ... }; SPEECH and IMAGE name a new asset.
        const text = (output as { text?: unknown } | null)?.text;
        console.log(typeof text === "string" ? text : JSON.stringify(output, null, 2));
      }
    });
}

type GenerateOptions = {
  task: string;
  model?: string;
  system?: string;
  attach?: string[];
  maxTokens?: string;
  temperature?: string;
  voice?: string;
  size?: string;
  wait: boolean;
};
