/** The CLI's way to the gateway: one GraphQL endpoint, one API key, errors with their codes. */

export type GraphQLResult<T> = { data?: T; errors?: Array<{ message: string; extensions?: { code?: string } }> };

/** An error the gateway sent back, with its typed code. */
export class GatewayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** TESSERA_URL may name the server or its /graphql path; default http://127.0.0.1:4000/graphql. */
export function gatewayEndpoint(env = process.env): URL {
  const url = new URL(env.TESSERA_URL ?? "http://127.0.0.1:4000/graphql");
  if (!url.pathname.endsWith("/graphql")) url.pathname = `${url.pathname.replace(/\/$/, "")}/graphql`;
  return url;
}

export function apiKey(env = process.env): string {
  const key = env.TESSERA_API_KEY;
  if (!key) throw new Error("set TESSERA_API_KEY (make one with `npx tessera keys create --project <name>`)");
  return key;
}

/**
 * One GraphQL request. With `files`, it is a multipart request (the GraphQL
 * multipart request spec): each file's Blob is streamed, not read first.
 */
export async function callGateway<T>(
  query: string,
  variables: Record<string, unknown>,
  files: Array<{ path: string; blob: Blob; name: string }> = [],
): Promise<T> {
  const url = gatewayEndpoint();
  const headers: Record<string, string> = { authorization: `Bearer ${apiKey()}` };
  let body: string | FormData;
  if (files.length > 0) {
    const form = new FormData();
    form.set("operations", JSON.stringify({ query, variables }));
    form.set("map", JSON.stringify(Object.fromEntries(files.map((file, index) => [String(index), [file.path]]))));
    for (const [index, file] of files.entries()) form.set(String(index), file.blob, file.name);
    body = form;
  } else {
    headers["content-type"] = "application/json";
    body = JSON.stringify({ query, variables });
  }
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers, body });
  } catch (error) {
    throw new Error(`cannot reach the gateway at ${url} (is \`npm start\` running? set TESSERA_URL): ${(error as Error).message}`);
  }
  const result = (await response.json().catch(() => null)) as GraphQLResult<T> | null;
  if (!result) throw new Error(`the gateway answered HTTP ${response.status} without a GraphQL result`);
  const [error] = result.errors ?? [];
  if (error) throw new GatewayError(error.extensions?.code ?? "ERROR", error.message);
  return result.data!;
}
