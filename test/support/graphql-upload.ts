import type { GraphQLResponse } from "./test-app.ts";

const INGEST_FILE = `mutation ($file: Upload!, $metadata: JSON, $key: String) {
  ingest(input: { file: $file, metadata: $metadata, idempotencyKey: $key }) {
    asset { id modality sha256 mimeType byteSize status } job { id status }
  }
}`;

/** Sends one file with the GraphQL multipart request spec, the way browsers and the CLI do. */
export async function uploadFile(
  url: string,
  key: string,
  file: { bytes: Uint8Array; filename: string; mimeType?: string },
  options: { query?: string; variables?: Record<string, unknown> } = {},
): Promise<GraphQLResponse> {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: options.query ?? INGEST_FILE, variables: { file: null, ...options.variables } }));
  form.append("map", JSON.stringify({ "0": ["variables.file"] }));
  form.append("0", new Blob([Buffer.from(file.bytes)], { type: file.mimeType ?? "application/octet-stream" }), file.filename);
  const response = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: form });
  return (await response.json()) as GraphQLResponse;
}
