import { describe, expect, it } from "vitest";
import { multipartBody, type UploadProgress } from "../../packages/client/index.ts";

describe("the SDK's multipart request body", () => {
  it("follows the GraphQL multipart request spec, has the length it announces, and reports progress up to it", async () => {
    const bytes = new Uint8Array(3 * 1024 * 1024).map((_, index) => index % 251);
    const seen: UploadProgress[] = [];
    const body = multipartBody(
      { query: "mutation ($input: IngestInput!) { ingest(input: $input) { asset { id } } }", variables: { input: { file: null } } },
      [{ path: "variables.input.file", blob: new Blob([bytes], { type: "image/png" }), name: 'a "b".png' }],
      (progress) => seen.push(progress),
    );
    const read = new Uint8Array(await new Response(body.stream).arrayBuffer());
    expect(read.byteLength).toBe(body.length);
    expect(seen.length).toBeGreaterThan(2);
    expect(seen.at(-1)).toEqual({ loaded: body.length, total: body.length });
    for (const [index, progress] of seen.entries()) if (index > 0) expect(progress.loaded).toBeGreaterThan(seen[index - 1]!.loaded);

    // A standard parser reads it back: operations, map, and the file's bytes intact.
    const form = await new Response(read, { headers: { "content-type": `multipart/form-data; boundary=${body.boundary}` } }).formData();
    expect(JSON.parse(form.get("operations") as string).variables).toEqual({ input: { file: null } });
    expect(JSON.parse(form.get("map") as string)).toEqual({ 0: ["variables.input.file"] });
    const file = form.get("0") as File;
    expect(file.name).toBe("a _b_.png");
    expect(file.type).toBe("image/png");
    expect(new Uint8Array(await file.arrayBuffer())).toEqual(bytes);
  });
});
