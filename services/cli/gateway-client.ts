/**
 * The CLI's gateway: the SDK's client (packages/client) with the endpoint and
 * key from TESSERA_URL and TESSERA_API_KEY (which --url and --api-key set).
 */
import { graphqlEndpoint, TesseraClient } from "../../packages/client/index.ts";

export { GatewayError, GatewayUnreachableError, type GatewayProblem } from "../../packages/client/index.ts";

/** TESSERA_URL may name the server or its /graphql path; default http://127.0.0.1:4000/graphql. */
export function gatewayEndpoint(env = process.env): URL {
  return graphqlEndpoint(env.TESSERA_URL);
}

export function apiKey(env = process.env): string {
  const key = env.TESSERA_API_KEY;
  if (!key) throw new Error("set TESSERA_API_KEY or pass --api-key (make one with `npx tessera keys create --project <name>`)");
  return key;
}

let client: TesseraClient | undefined;

/**
 * One client per process, made at first use (after the flags set the
 * variables). With TESSERA_PERSISTED=1 it sends registered operations by hash
 * only, for a gateway that allows nothing else (PERSISTED_OPERATIONS=only).
 */
export function gateway(): TesseraClient {
  client ??= new TesseraClient({ url: gatewayEndpoint(), apiKey: () => apiKey(), persisted: process.env.TESSERA_PERSISTED === "1" });
  return client;
}
