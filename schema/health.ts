import { builder } from "./builder.ts";
import { checkHealth, type HealthReport } from "../services/gateway/health.ts";

const DependencyState = builder.enumType("DependencyState", {
  description: "Whether one dependency answered its check.",
  values: { OK: { description: "It answered within the check's timeout." }, DOWN: { description: "It failed or did not answer in time." } },
});

const HealthCheck = builder.objectRef<HealthReport["checks"][number]>("HealthCheck").implement({
  description: "One dependency's check.",
  fields: (t) => ({
    name: t.exposeString("name", { description: "The dependency: redis, postgres, or the vector store with its kind." }),
    state: t.field({ type: DependencyState, description: "What the check found.", resolve: (check) => check.state }),
    // How long a dependency took and what it said can tell an outsider about the inside: for callers with a key only.
    latencyMs: t.int({
      nullable: true,
      description: "Null without an API key.",
      resolve: (check, _args, context) => (context.project ? check.latencyMs : null),
    }),
    error: t.string({
      nullable: true,
      description: "The dependency's own error text; null without an API key.",
      resolve: (check, _args, context) => (context.project ? check.error : null),
    }),
  }),
});

const Health = builder.objectRef<HealthReport>("Health").implement({
  description: "Each dependency is checked live, with a short timeout, on every request.",
  fields: (t) => ({
    status: t.field({
      description: "OK when every dependency answered.",
      type: builder.enumType("HealthStatus", {
        description: "The gateway's state as a whole.",
        values: { OK: { description: "Every dependency answered." }, DEGRADED: { description: "At least one dependency is DOWN." } },
      }),
      resolve: (report) => report.status,
    }),
    redis: t.field({ type: DependencyState, description: "Redis (queues, events, limits).", resolve: (report) => report.redis }),
    postgres: t.field({ type: DependencyState, description: "PostgreSQL (every record).", resolve: (report) => report.postgres }),
    vectorStore: t.field({ type: DependencyState, description: "The vector store (Weaviate or the embedded one).", resolve: (report) => report.vectorStore }),
    checks: t.field({ type: [HealthCheck], description: "Each check with its detail.", resolve: (report) => report.checks }),
  }),
});

builder.queryField("health", (t) =>
  t.field({
    type: Health,
    description: "Open to everyone: no API key needed. Each check's error text and latency only with a key.",
    // The one root field outside the `project` scope that Query requires of every other.
    skipTypeScopes: true,
    resolve: (_root, _args, context) => checkHealth(context.app),
  }),
);
