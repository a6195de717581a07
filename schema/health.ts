import { builder } from "./builder.ts";
import { checkHealth, type HealthReport } from "../services/gateway/health.ts";

const DependencyState = builder.enumType("DependencyState", {
  values: ["OK", "DOWN"] as const,
});

const HealthCheck = builder.objectRef<HealthReport["checks"][number]>("HealthCheck").implement({
  fields: (t) => ({
    name: t.exposeString("name"),
    state: t.field({ type: DependencyState, resolve: (check) => check.state }),
    latencyMs: t.exposeInt("latencyMs"),
    error: t.exposeString("error", { nullable: true }),
  }),
});

const Health = builder.objectRef<HealthReport>("Health").implement({
  description: "Each dependency is checked live, with a short timeout, on every request.",
  fields: (t) => ({
    status: t.field({
      type: builder.enumType("HealthStatus", { values: ["OK", "DEGRADED"] as const }),
      resolve: (report) => report.status,
    }),
    redis: t.field({ type: DependencyState, resolve: (report) => report.redis }),
    postgres: t.field({ type: DependencyState, resolve: (report) => report.postgres }),
    vectorStore: t.field({ type: DependencyState, resolve: (report) => report.vectorStore }),
    checks: t.field({ type: [HealthCheck], resolve: (report) => report.checks }),
  }),
});

builder.queryField("health", (t) =>
  t.field({
    type: Health,
    description: "Open to everyone: no API key needed.",
    // The one root field outside the `project` scope that Query requires of every other.
    skipTypeScopes: true,
    resolve: (_root, _args, context) => checkHealth(context.app),
  }),
);
