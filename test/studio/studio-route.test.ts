import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { studioFile } from "../../services/gateway/studio-route.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * The gateway's /studio route and GraphiQL page, without a browser: what is
 * served when the studio is built, what when it is not, and that GraphiQL's
 * page carries its own code instead of loading it from a CDN.
 */
describe("studio route and offline GraphiQL", () => {
  let t: TestApp;
  let dir: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-studio-"));
    t = await startTestApp({ env: { GRAPHQL_INTROSPECTION: "1" } });
  });
  afterAll(async () => {
    await t?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("without a build, /studio answers 503 with what to run", async () => {
    const answer = await studioFile(path.join(dir, "missing"), "/studio/");
    expect(answer.status).toBe(503);
    expect(String(answer.body)).toContain("npm run build:studio");
  });

  it("with a build, serves its files, index.html for the app's routes, and nothing outside it", async () => {
    await fs.mkdir(path.join(dir, "build", "assets"), { recursive: true });
    await fs.writeFile(path.join(dir, "build", "index.html"), "<!doctype html><title>studio</title>");
    await fs.writeFile(path.join(dir, "build", "assets", "app-123.js"), "console.log(1)");
    await fs.writeFile(path.join(dir, "secret.txt"), "secret");
    const build = path.join(dir, "build");

    const script = await studioFile(build, "/studio/assets/app-123.js");
    expect(script.status).toBe(200);
    expect(script.headers["content-type"]).toMatch(/javascript/);
    expect(script.headers["cache-control"]).toContain("immutable");

    const route = await studioFile(build, "/studio/workflows/my-flow");
    expect(route.status).toBe(200);
    expect(String(route.body)).toContain("<title>studio</title>");

    expect((await studioFile(build, "/studio/assets/gone-456.js")).status).toBe(404);
    for (const escape of ["/studio/../secret.txt", "/studio/%2e%2e/secret.txt", "/studio/..%2fsecret.txt"]) {
      const answer = await studioFile(build, escape);
      expect(String(answer.body)).not.toContain("secret");
    }
  });

  it("the gateway mounts /studio (a redirect to /studio/, then a page or the not-built message) with no API key", async () => {
    const origin = new URL(t.url).origin;
    const redirect = await fetch(`${origin}/studio`, { redirect: "manual" });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get("location")).toBe("/studio/");
    const page = await fetch(`${origin}/studio/`);
    expect([200, 503]).toContain(page.status);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const body = await page.text();
    expect(page.status === 200 ? body : "npm run build:studio").toMatch(page.status === 200 ? /<div id="root">/ : /build:studio/);
  });

  it("GraphiQL's page carries its own code: nothing is loaded from a CDN", async () => {
    const response = await fetch(t.url, { headers: { accept: "text/html" } });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).not.toMatch(/(src|href)=["']?https?:/);
    expect(html).not.toContain("unpkg.com");
    expect(html.length).toBeGreaterThan(100_000);
  });
});
