import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../services/core/config.ts";
import { checkPostgres } from "../../services/core/dependency-check.ts";
import { ErrorCode, TesseraError, toErrorRecord } from "../../services/core/errors.ts";
import { createLogger } from "../../services/core/logger.ts";

const PASSWORD = "hunter2-Very-Secret";

/** A logger whose lines land in `lines`. */
function capturedLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger("trace", "test", destination), lines };
}

describe("configuration errors", () => {
  it("name a bad DATABASE_URL or REDIS_URL without its password", () => {
    const problem = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("the configuration was accepted");
    };
    const database = problem({ DATABASE_URL: `mysql://tessera:${PASSWORD}@db.internal:3306/tessera` });
    expect(database).toContain("DATABASE_URL");
    expect(database).toContain("db.internal");
    expect(database).not.toContain(PASSWORD);
    const redis = problem({ REDIS_URL: `memcached://:${PASSWORD}@cache:6379` });
    expect(redis).toContain("REDIS_URL");
    expect(redis).not.toContain(PASSWORD);
  });

  it("never echo a secret-named variable's value", () => {
    try {
      loadConfig({ WEAVIATE_URL: `ftp://admin:${PASSWORD}@weaviate`, PORT: "not-a-port" });
    } catch (error) {
      expect((error as Error).message).not.toContain(PASSWORD);
      return;
    }
    throw new Error("the configuration was accepted");
  });
});

describe("dependency checks", () => {
  it("say where PostgreSQL was looked for, without the password", async () => {
    const error = await checkPostgres({ DATABASE_URL: `postgresql://tessera:${PASSWORD}@127.0.0.1:1/tessera` } as never).catch((error) => error);
    expect(error.message).toContain("127.0.0.1:1");
    expect(error.message).not.toContain(PASSWORD);
  });
});

describe("errors", () => {
  it("a TesseraError's message and details never carry a URL's password, a bearer token or a key in a query", () => {
    const error = new TesseraError(ErrorCode.FETCH_FAILED, `cannot reach postgresql://tessera:${PASSWORD}@db/x with Bearer ${PASSWORD}`, {
      url: `https://user:${PASSWORD}@example.com/a?api_key=${PASSWORD}&page=2`,
      nested: [{ header: `Basic ${PASSWORD}` }],
    });
    const record = JSON.stringify(error.toRecord());
    expect(record).not.toContain(PASSWORD);
    expect(error.message).not.toContain(PASSWORD);
    expect(record).toContain("example.com/a?api_key=");
    expect(record).toContain("page=2");
  });

  it("a record of an error that is not a TesseraError has a code and a safe message, never the raw text", () => {
    const raw = new Error("ENOENT: no such file or directory, open '/srv/tessera/.data/blobs/ab/abcdef'");
    const record = toErrorRecord(raw, "job 5f0c");
    expect(record.code).toBe("INTERNAL");
    expect(JSON.stringify(record)).not.toMatch(/ENOENT|\/srv\/tessera|blobs/);
    expect(record.message).toContain("job 5f0c");
    const prisma = toErrorRecord(new Error("\nInvalid `prisma.asset.update()` invocation in\n/work/main/services/assets/asset-records.ts:42:7"));
    expect(JSON.stringify(prisma)).not.toMatch(/prisma|asset-records/);
  });
});

describe("logs", () => {
  it("redact authorization headers, API keys, passwords in URLs and secret-named settings at any depth", () => {
    const { logger, lines } = capturedLogger();
    logger.info({ request: { headers: { authorization: `Bearer ${PASSWORD}`, cookie: `sid=${PASSWORD}` } } }, "a request");
    logger.info({ config: { WEAVIATE_API_KEY: PASSWORD, OPENAI_API_KEY: PASSWORD, DATABASE_URL: `postgresql://u:${PASSWORD}@db/x` } }, "config");
    logger.error({ err: new Error(`connect to redis://:${PASSWORD}@cache:6379 failed`) }, "redis is down");
    logger.warn(`retrying https://bot:${PASSWORD}@hooks.example/x`);
    logger.info({ provider: { apiKey: PASSWORD, password: PASSWORD } }, "provider");
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(line).not.toContain(PASSWORD);
    expect(lines.join("\n")).toContain("hooks.example");
    expect(lines.join("\n")).toContain("cache:6379");
  });

  it("redact the values of secrets the process was given, wherever they appear", async () => {
    const { rememberSecretsOf } = await import("../../services/core/secret-redaction.ts");
    const apiKey = "sk-proj-9a8b7c6d5e4f3a2b1c0d";
    rememberSecretsOf({ PROVIDER_ACME_API_KEY: apiKey, WEAVIATE_API_KEY: "wv-key-0123456789", LOG_LEVEL: "info" });
    const { logger, lines } = capturedLogger();
    logger.warn({ response: { body: `invalid key ${apiKey}` } }, `the provider refused ${apiKey}`);
    expect(lines.join("\n")).not.toContain(apiKey);
    expect(new TesseraError(ErrorCode.PROVIDER_ERROR, `refused wv-key-0123456789`).message).not.toContain("wv-key-0123456789");
    // Short or ordinary values are not secrets worth hunting: "info" stays readable.
    logger.info("level info");
    expect(lines.at(-1)).toContain("level info");
  });
});
