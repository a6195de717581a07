/**
 * The deployment files against the configuration schema (services/core/config.ts): docker-compose.yml sets only
 * variables Tessera knows, with values it accepts, and waits for what each service needs; the images build
 * without downloads and run as non-root with a HEALTHCHECK; .env.example is the schema, written out.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../../services/core/config.ts";
import { webhookSettings } from "../../services/webhooks/webhook-settings.ts";
import { configVariables, OTHER_VARIABLES, renderEnvExample } from "../../infra/env-example.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

type Service = {
  image?: string;
  build?: { dockerfile?: string };
  command?: string[];
  environment?: Record<string, string | number>;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
};
const compose = parse(read("docker-compose.yml"), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const tesseraServices = Object.entries(services).filter(([, service]) => service.build);
const variables = configVariables();
const known = new Set([...variables.map((variable) => variable.name), ...OTHER_VARIABLES.map((variable) => variable.name)]);

describe(".env.example", () => {
  it("is the configuration schema written out (`npm run env:example` after changing services/core/config.ts)", () => {
    expect(read(".env.example")).toBe(renderEnvExample());
  });

  it("lists every variable of the schemas with its default", () => {
    const text = read(".env.example");
    expect(variables.length).toBeGreaterThan(40);
    expect(variables.map((variable) => variable.name)).toContain("WEBHOOK_SECRETS_KEY");
    for (const variable of variables) {
      if (variable.defaultValue === undefined) {
        expect(text).toMatch(new RegExp(`^# ${variable.name}=$`, "m"));
      } else {
        expect(text).toMatch(new RegExp(`^${variable.name}=`, "m"));
      }
    }
    // Its values are ones the schema accepts, and what it leaves unset is what the schema leaves unset.
    const assignments = Object.fromEntries(
      text
        .split("\n")
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(loadConfig(assignments)).toEqual(loadConfig({}));
    expect(webhookSettings(assignments)).toEqual(webhookSettings({}));
  });
});

describe("docker-compose.yml", () => {
  it("builds Tessera's services from the project's Dockerfiles", () => {
    expect(tesseraServices.map(([name]) => name).sort()).toEqual(["gateway", "migrate", "worker", "worker-gpu"]);
    for (const [, service] of tesseraServices) expect(["infra/Dockerfile", "infra/Dockerfile.gpu"]).toContain(service.build?.dockerfile);
  });

  it.each(tesseraServices)("%s sets only known variables, with values the schema accepts", (_name, service) => {
    const environment = Object.fromEntries(Object.entries(service.environment ?? {}).map(([key, value]) => [key, String(value)]));
    expect(Object.keys(environment).filter((key) => !known.has(key))).toEqual([]);
    expect(() => loadConfig(environment)).not.toThrow();
  });

  it.each(tesseraServices)("%s reaches PostgreSQL, Redis and Weaviate by their compose names, never the host's", (_name, service) => {
    const environment = service.environment ?? {};
    // Every default that points at this machine must be replaced inside a container.
    for (const variable of variables.filter((variable) => variable.defaultValue?.includes("127.0.0.1"))) {
      expect(environment[variable.name], variable.name).toBeDefined();
    }
    const hostOf = (key: string) => new URL(String(environment[key])).hostname;
    expect(hostOf("DATABASE_URL")).toBe("postgres");
    expect(hostOf("REDIS_URL")).toBe("redis");
    expect(hostOf("WEAVIATE_URL")).toBe("weaviate");
    expect(environment.DATA_DIR).toBe("/data");
    const { DATABASE_URL } = environment;
    const postgres = services.postgres!.environment!;
    expect(String(DATABASE_URL)).toBe(`postgresql://${postgres.POSTGRES_USER}:${postgres.POSTGRES_PASSWORD}@postgres:5432/${postgres.POSTGRES_DB}`);
  });

  it("gives every long-running service a healthcheck and waits on conditions, never on a bare start", () => {
    const jobs = new Set(
      Object.values(services).flatMap((service) =>
        Object.entries(service.depends_on ?? {})
          .filter(([, dependency]) => dependency.condition === "service_completed_successfully")
          .map(([name]) => name),
      ),
    );
    expect([...jobs]).toEqual(["migrate"]);
    for (const [name, service] of Object.entries(services)) {
      if (!jobs.has(name)) expect(service.healthcheck?.test?.length, `${name} has a healthcheck`).toBeGreaterThan(0);
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(services[dependency], `${name} depends on a service that exists`).toBeDefined();
        expect(condition, `${name} → ${dependency}`).toBe(jobs.has(dependency) ? "service_completed_successfully" : "service_healthy");
      }
    }
  });

  it("starts the gateway and every worker only once PostgreSQL, Redis and Weaviate are healthy and migrations ran", () => {
    for (const name of ["gateway", "worker", "worker-gpu"]) {
      expect(services[name]!.depends_on).toEqual({
        postgres: { condition: "service_healthy" },
        redis: { condition: "service_healthy" },
        weaviate: { condition: "service_healthy" },
        migrate: { condition: "service_completed_successfully" },
      });
    }
  });

  it("gives workers the probe port their healthcheck asks", () => {
    for (const name of ["worker", "worker-gpu"]) {
      expect(services[name]!.environment?.WORKER_HTTP_PORT).toBeDefined();
      expect(services[name]!.healthcheck?.test).toEqual(["CMD", "node", "infra/healthcheck.js"]);
    }
    expect(services["worker-gpu"]!.command).toEqual(expect.arrayContaining(["--queues", "models"]));
  });

  it("has an observability profile whose Prometheus scrapes compose's gateway and worker with the local config's jobs", () => {
    expect(services.jaeger?.profiles).toEqual(["observability"]);
    expect(services.prometheus?.profiles).toEqual(["observability"]);
    const local = parse(read("infra/observability/prometheus.yml")) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const composed = parse(read("infra/observability/prometheus-compose.yml")) as typeof local;
    expect(composed.scrape_configs.map((job) => job.job_name)).toEqual(local.scrape_configs.map((job) => job.job_name));
    const targets = Object.fromEntries(composed.scrape_configs.map((job) => [job.job_name, job.static_configs.flatMap((config) => config.targets)]));
    expect(targets).toEqual({ "tessera-gateway": ["gateway:4000"], "tessera-worker": [`worker:${services.worker!.environment!.WORKER_HTTP_PORT}`] });
  });

  it("keeps Redis's jobs across restarts: append-only file on, no eviction", () => {
    const command = services.redis!.command!.join(" ");
    expect(command).toContain("--appendonly yes");
    expect(command).toContain("--maxmemory-policy noeviction");
  });
});

describe("Dockerfiles", () => {
  /** The instructions of a Dockerfile, continuation lines joined, comments dropped. */
  const instructions = (file: string) =>
    read(file)
      .replace(/\\\n/g, " ")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith("#"));

  it.each(["infra/Dockerfile", "infra/Dockerfile.gpu"])("%s installs with onnxruntime-node's download skipped", (file) => {
    const lines = instructions(file);
    const skip = lines.findIndex((line) => /^ENV .*ONNXRUNTIME_NODE_INSTALL=skip/.test(line));
    const install = lines.findIndex((line) => /^RUN npm ci/.test(line));
    expect(skip).toBeGreaterThanOrEqual(0);
    expect(skip).toBeLessThan(install);
  });

  it.each(["infra/Dockerfile", "infra/Dockerfile.gpu"])("%s runs as non-root, with a writable /data and a HEALTHCHECK", (file) => {
    const lines = instructions(file);
    const user = lines.filter((line) => line.startsWith("USER ")).at(-1);
    expect(user).toMatch(/^USER (node|ubuntu)$/);
    const owner = user!.slice(5);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^RUN .*mkdir -p /data.*chown ${owner}:${owner} /data`)));
    expect(lines).toContainEqual(expect.stringMatching(/^ENV .*DATA_DIR=\/data/));
    expect(lines.filter((line) => line.startsWith("HEALTHCHECK "))).toEqual([expect.stringContaining('CMD ["node", "infra/healthcheck.js"]')]);
  });

  it(".dockerignore keeps secrets, local data and build output out of the image", () => {
    const ignored = read(".dockerignore").split("\n").map((line) => line.trim());
    for (const entry of [".env", ".env.*", "!.env.example", ".data", "node_modules", "coverage", "studio/dist"]) expect(ignored).toContain(entry);
  });
});
