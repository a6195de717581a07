import type { Plugin } from "graphql-yoga";
import type { AppContext } from "../../app/app-context.ts";
import { useOperationTelemetry } from "../../observability/graphql-hooks.ts";
import { answerProbe, PROBE_PATHS } from "../../observability/probes.ts";
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
    // Any other path goes on at once: no promise for yoga to wait on (issue #20).
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (!PROBE_PATHS.has(url.pathname)) return;
      return answer(request, url, endResponse, fetchAPI);
    },
  };

  async function answer(request: Request, url: URL, endResponse: (response: Response) => void, fetchAPI: { Response: typeof Response }) {
    const probe = await answerProbe(request.method, url.pathname, request.headers.get("authorization"), { deps: app, metricsToken: app.config.METRICS_TOKEN });
    if (probe) endResponse(new fetchAPI.Response(request.method === "HEAD" ? null : probe.body, { status: probe.status, headers: probe.headers }));
  }
}
