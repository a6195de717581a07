import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { TesseraClient } from "../../packages/client/index.ts";
import { apiKey, GatewayError, gatewayEndpoint } from "../../services/cli/gateway-client.ts";

const saved = { url: process.env.TESSERA_URL, key: process.env.TESSERA_API_KEY };
afterEach(() => {
  for (const [name, value] of [["TESSERA_URL", saved.url], ["TESSERA_API_KEY", saved.key]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe("the CLI's gateway client", () => {
  it("takes TESSERA_URL as the server or its /graphql path", () => {
    expect(gatewayEndpoint({}).href).toBe("http://127.0.0.1:4000/graphql");
    expect(gatewayEndpoint({ TESSERA_URL: "http://tessera.local:8080" }).href).toBe("http://tessera.local:8080/graphql");
    expect(gatewayEndpoint({ TESSERA_URL: "http://tessera.local/behind/proxy/" }).href).toBe("http://tessera.local/behind/proxy/graphql");
    expect(gatewayEndpoint({ TESSERA_URL: "https://tessera.local/graphql" }).href).toBe("https://tessera.local/graphql");
  });

  it("says how to get an API key when TESSERA_API_KEY is unset", () => {
    expect(() => apiKey({})).toThrow(/TESSERA_API_KEY.*keys create/);
  });

  it("keeps an error's code and details, and lists its problems as line:col message", () => {
    const error = new GatewayError([
      {
        message: "the workflow file has 2 problems",
        extensions: {
          code: "INVALID_WORKFLOW",
          details: { problems: [{ line: 7, column: 13, message: 'step "a" needs itself' }, { path: "steps.1.uses", message: "unknown step type" }] },
        },
      },
      { message: "and another", extensions: { code: "BAD_USER_INPUT" } },
    ]);
    expect(error.code).toBe("INVALID_WORKFLOW");
    expect(error.problems).toHaveLength(2);
    expect(error.message).toBe(
      ["INVALID_WORKFLOW: the workflow file has 2 problems", '  7:13 step "a" needs itself', "  steps.1.uses: unknown step type", "BAD_USER_INPUT: and another"].join("\n"),
    );
  });

  it("says it cannot reach the gateway, for calls and for subscriptions alike", async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    process.env.TESSERA_URL = `http://127.0.0.1:${port}`;
    process.env.TESSERA_API_KEY = "tsk_test";
    const unreachable = new RegExp(`^cannot reach the gateway at http://127\\.0\\.0\\.1:${port}/graphql .*ECONNREFUSED`);
    const client = new TesseraClient({ url: gatewayEndpoint(), apiKey: () => apiKey() });
    await expect(client.request("{ health { status } }", {})).rejects.toThrow(unreachable);
    const events = client.subscribe("subscription ($id: ID!) { jobEvents(id: $id) { status } }", { id: "x" });
    await expect(events.next()).rejects.toThrow(unreachable);
  });
});
