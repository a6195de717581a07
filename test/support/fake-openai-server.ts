import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local HTTP server that speaks OpenAI's wire protocol from a script of
 * responses. Hosted language models are paid external APIs, so this is the one
 * stand-in the tests use; everything between it and GraphQL is real (the
 * `openai` SDK, the router, the worker, PostgreSQL, Redis).
 */

export type FakeToolCall = { name: string; arguments: unknown; id?: string };

export type FakeReply =
  | {
      kind: "chat";
      content?: string;
      toolCalls?: FakeToolCall[];
      finishReason?: string;
      usage?: { prompt_tokens: number; completion_tokens: number };
      /** Wait before answering (a slow model). */
      delayMs?: number;
      /** Wait between streamed chunks. */
      chunkDelayMs?: number;
    }
  | { kind: "error"; status: number; message?: string; type?: string; headers?: Record<string, string>; delayMs?: number }
  | { kind: "embedding"; vectors: number[][] }
  | { kind: "image"; png: Buffer; revisedPrompt?: string }
  | { kind: "transcription"; text: string };

export type RecordedRequest = { method: string; path: string; headers: IncomingMessage["headers"]; body: any };

export type FakeOpenAIServer = {
  /** Base URL for the SDK, ending in /v1. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Appends replies; each request takes the next one. */
  enqueue(...replies: Array<FakeReply | ((request: RecordedRequest) => FakeReply)>): void;
  /** Served when the script is empty (a model that never stops); unset: 500 "script exhausted". */
  setFallback(reply: ((request: RecordedRequest) => FakeReply) | undefined): void;
  /** Forgets unused replies, the fallback and the recorded requests, so one test's leftovers never answer the next. */
  reset(): void;
  close(): Promise<void>;
};

export async function startFakeOpenAIServer(): Promise<FakeOpenAIServer> {
  const script: Array<FakeReply | ((request: RecordedRequest) => FakeReply)> = [];
  const requests: RecordedRequest[] = [];
  let fallback: ((request: RecordedRequest) => FakeReply) | undefined;
  let counter = 0;

  const server: Server = createServer(async (req, res) => {
    const raw = await readBody(req);
    const isJson = (req.headers["content-type"] ?? "").includes("application/json");
    const request: RecordedRequest = {
      method: req.method ?? "GET",
      path: (req.url ?? "").replace(/\?.*$/, ""),
      headers: req.headers,
      body: isJson && raw.length ? JSON.parse(raw.toString("utf8")) : raw,
    };
    requests.push(request);
    const next = script.shift() ?? fallback;
    if (!next) return sendJson(res, 500, { error: { message: "fake server: script exhausted", type: "server_error" } });
    const reply = typeof next === "function" ? next(request) : next;
    try {
      await respond(reply, request, res, () => `${++counter}`);
    } catch {
      res.destroy(); // the client went away (a timeout): nothing to answer
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue: (...replies) => void script.push(...replies),
    setFallback: (reply) => void (fallback = reply),
    reset: () => {
      script.length = 0;
      requests.length = 0;
      fallback = undefined;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function respond(reply: FakeReply, request: RecordedRequest, res: ServerResponse, nextId: () => string) {
  if ("delayMs" in reply && reply.delayMs) await sleep(reply.delayMs, res);
  switch (reply.kind) {
    case "error":
      return sendJson(res, reply.status, { error: { message: reply.message ?? `status ${reply.status}`, type: reply.type ?? "error" } }, reply.headers);
    case "embedding":
      return sendJson(res, 200, {
        object: "list",
        model: request.body.model,
        data: reply.vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
        usage: { prompt_tokens: 3 * reply.vectors.length, total_tokens: 3 * reply.vectors.length },
      });
    case "image":
      return sendJson(res, 200, { created: 0, data: [{ b64_json: reply.png.toString("base64"), revised_prompt: reply.revisedPrompt }] });
    case "transcription":
      return sendJson(res, 200, { text: reply.text });
    case "chat":
      return request.body.stream ? streamChat(reply, request, res, nextId) : sendJson(res, 200, completion(reply, request, nextId));
  }
}

function usageOf(reply: Extract<FakeReply, { kind: "chat" }>) {
  const usage = reply.usage ?? { prompt_tokens: 10, completion_tokens: 5 };
  return { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens };
}

function wireToolCalls(reply: Extract<FakeReply, { kind: "chat" }>, nextId: () => string) {
  return (reply.toolCalls ?? []).map((call) => ({
    id: call.id ?? `call_${nextId()}`,
    type: "function",
    function: { name: call.name, arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments) },
  }));
}

function completion(reply: Extract<FakeReply, { kind: "chat" }>, request: RecordedRequest, nextId: () => string) {
  const toolCalls = wireToolCalls(reply, nextId);
  return {
    id: `chatcmpl-${nextId()}`,
    object: "chat.completion",
    created: 0,
    model: request.body.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: reply.content ?? null, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
        finish_reason: reply.finishReason ?? (toolCalls.length ? "tool_calls" : "stop"),
      },
    ],
    usage: usageOf(reply),
  };
}

/** Server-sent events the way OpenAI sends them: a role chunk, content pieces, tool-call fragments, finish, usage, [DONE]. */
async function streamChat(reply: Extract<FakeReply, { kind: "chat" }>, request: RecordedRequest, res: ServerResponse, nextId: () => string) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  const id = `chatcmpl-${nextId()}`;
  const chunk = (delta: object, finishReason: string | null = null, extra: object = {}) => {
    const body = { id, object: "chat.completion.chunk", created: 0, model: request.body.model, choices: [{ index: 0, delta, finish_reason: finishReason }], ...extra };
    res.write(`data: ${JSON.stringify(body)}\n\n`);
  };
  const pause = () => (reply.chunkDelayMs ? sleep(reply.chunkDelayMs, res) : Promise.resolve());
  chunk({ role: "assistant", content: "" });
  for (const piece of (reply.content ?? "").match(/\S+\s*|\s+/g) ?? []) {
    await pause();
    chunk({ content: piece });
  }
  const toolCalls = wireToolCalls(reply, nextId);
  for (const [index, call] of toolCalls.entries()) {
    // Arguments arrive in fragments, as real servers send them.
    const half = Math.ceil(call.function.arguments.length / 2);
    chunk({ tool_calls: [{ index, id: call.id, type: "function", function: { name: call.function.name, arguments: call.function.arguments.slice(0, half) } }] });
    await pause();
    chunk({ tool_calls: [{ index, function: { arguments: call.function.arguments.slice(half) } }] });
  }
  chunk({}, reply.finishReason ?? (toolCalls.length ? "tool_calls" : "stop"));
  if (request.body.stream_options?.include_usage) {
    res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model: request.body.model, choices: [], usage: usageOf(reply) })}\n\n`);
  }
  res.write("data: [DONE]\n\n");
  res.end();
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Sleeps, but stops early (throwing) when the client hangs up. */
function sleep(ms: number, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      res.off("close", onClose);
      resolve();
    }, ms);
    const onClose = () => {
      clearTimeout(timer);
      reject(new Error("client closed"));
    };
    res.once("close", onClose);
  });
}
