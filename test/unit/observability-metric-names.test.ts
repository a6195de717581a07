import { expect, it } from "vitest";
import { metricsRegistry } from "../../services/observability/metrics.ts";

/*
 * Dashboards (infra/observability) and alerts read these names and labels:
 * a rename or a changed label set must fail here, not in a dashboard.
 */
it("keeps Tessera's metric names, types and labels", async () => {
  const metrics = await metricsRegistry.getMetricsAsJSON();
  const tessera = Object.fromEntries(
    metrics
      .filter((metric) => metric.name.startsWith("tessera_"))
      .map((metric) => [metric.name, { type: String(metric.type), labels: [...((metricsRegistry.getSingleMetric(metric.name) as unknown as { labelNames: string[] }).labelNames ?? [])] }]),
  );
  expect(tessera).toEqual({
    tessera_graphql_operation_duration_seconds: { type: "histogram", labels: ["operation", "type"] },
    tessera_graphql_errors_total: { type: "counter", labels: ["operation", "code"] },
    tessera_job_duration_seconds: { type: "histogram", labels: ["queue", "status"] },
    tessera_job_queue_wait_seconds: { type: "histogram", labels: ["queue"] },
    tessera_model_batch_size: { type: "histogram", labels: ["model", "operation", "device"] },
    tessera_model_batch_duration_seconds: { type: "histogram", labels: ["model", "operation", "device"] },
    tessera_vector_store_duration_seconds: { type: "histogram", labels: ["store", "operation", "status"] },
    tessera_queue_jobs: { type: "gauge", labels: ["queue", "state"] },
    tessera_generation_tokens_total: { type: "counter", labels: ["provider", "model", "direction"] },
    tessera_workflow_step_duration_seconds: { type: "histogram", labels: ["type", "status"] },
    tessera_workflow_runs_ended_total: { type: "counter", labels: ["status"] },
  });
  // The process metrics the alert rules use.
  const names = metrics.map((metric) => metric.name);
  expect(names).toEqual(expect.arrayContaining(["nodejs_eventloop_lag_p99_seconds", "process_resident_memory_bytes", "process_cpu_seconds_total"]));
});
