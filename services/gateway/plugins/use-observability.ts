import type { Plugin } from "graphql-yoga";
import type { AppContext } from "../../app/app-context.ts";
import { useOperationTelemetry } from "../../observability/graphql-hooks.ts";
import { answerProbe } from "../../observability/probes.ts";
import type { GatewayContext } from "../context.ts";

/**
 * `/live`, `/ready` and `/metrics` on the gateway's port, and GraphQL
 * operations as metrics and spans (services/observability). Yoga's own
 * `/health` stays: it answers 200 whenever the process is up.
 */
export function useObservability(app: AppContext): Plugin<GatewayContext> {
  return {
    onPluginInit({ addPlugin }) {
      addPlugin(useOperationTelemetry((contextValue) => (contextValue as Partial<GatewayContext>).project?.id) as Plugin<GatewayContext>);
    },
    async onRequest({ request, url, endResponse, fetchAPI }) {
      const answer = await answerProbe(request.method, url.pathname, request.headers.get("authorization"), {
        deps: app,
        metricsToken: app.config.METRICS_TOKEN,
      });
      if (answer) endResponse(new fetchAPI.Response(request.method === "HEAD" ? null : answer.body, { status: answer.status, headers: answer.headers }));
    },
  };
}
