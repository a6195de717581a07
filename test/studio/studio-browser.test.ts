import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import sharp from "sharp";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { STUDIO_BUILD_DIR } from "../../services/gateway/studio-route.ts";
import { makeWav } from "../support/media-fixtures.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";
import { TEST_WEAVIATE_GRPC_PORT, TEST_WEAVIATE_URL } from "../support/test-env.ts";

/*
 * Tessera Studio in a real browser: Debian's chromium driven by playwright-core
 * (no browser download), against a real gateway and worker (PostgreSQL, Redis,
 * Weaviate, the models served out of the box). The studio is built first
 * (`vite build studio`, as `npm run build:studio` does) and served by the
 * gateway at /studio. Every wait is on a condition, with generous limits: the
 * CI machine is slow and shared. Screenshots go to studio/test-artifacts/.
 *
 * Skipped, and only then, when no chromium is installed (`apt-get install -y chromium`, or set CHROMIUM_PATH).
 */

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"].find((p) => p && existsSync(p));
const ROOT = path.resolve(import.meta.dirname, "../..");
const ARTIFACTS = path.join(ROOT, "studio", "test-artifacts");
const LONG = 180_000;

// CI installs chromium (infra/setup-local.sh): there a missing browser is a failure, never a silent skip.
if (!CHROMIUM && process.env.CI) throw new Error("no chromium found, and CI must run the studio's browser tests: run infra/setup-local.sh (it installs chromium)");
if (!CHROMIUM) console.warn("studio browser tests SKIPPED: no chromium found; install it with `apt-get install -y chromium` or set CHROMIUM_PATH");

describe.skipIf(!CHROMIUM)("Tessera Studio in chromium", () => {
  let t: TestApp;
  let origin: string;
  let key: string;
  let projectId: string;
  let browser: Browser;
  let page: Page;
  let problems: string[] = [];

  beforeAll(async () => {
    // Always a fresh build: the test checks the sources as they are, not an old dist.
    await promisify(execFile)(process.execPath, [path.join(ROOT, "node_modules/vite/bin/vite.js"), "build", "studio", "--logLevel", "warn"], {
      cwd: ROOT,
      timeout: 300_000,
    });
    expect(existsSync(path.join(STUDIO_BUILD_DIR, "index.html"))).toBe(true);
    await fs.mkdir(ARTIFACTS, { recursive: true });
    t = await startTestApp({
      worker: true,
      env: { WEAVIATE_URL: TEST_WEAVIATE_URL, WEAVIATE_GRPC_PORT: String(TEST_WEAVIATE_GRPC_PORT), GRAPHQL_INTROSPECTION: "1" },
    });
    origin = new URL(t.url).origin;
    ({ key, projectId } = await t.createProject());
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(60_000);
    page = await context.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${origin}/studio/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Open studio" }).click();
    await page.getByRole("heading", { name: "Assets" }).waitFor();
  }, 420_000);

  afterEach(async (context) => {
    // A failure leaves a screenshot and the page's text beside the others.
    if (context.task.result?.state === "fail" && page) {
      const name = `failed-${context.task.name.slice(0, 40).replace(/[^a-z0-9]+/gi, "-")}`;
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => {});
      await fs.writeFile(path.join(ARTIFACTS, `${name}.txt`), `${page.url()}\n\n${await page.locator("body").innerText().catch(() => "")}\n\n${problems.join("\n")}`);
    }
    const seen = problems;
    problems = [];
    expect(seen, "no console errors on the page").toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    if (t) {
      if (projectId) await t.app.vectorStore.deleteProject(projectId).catch(() => {});
      await t.close();
    }
  });

  async function screenshot(name: string) {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  }

  /** Drops a file on an element the way a user's drag does (a DataTransfer holding a File). */
  async function dropFile(selector: string, file: { name: string; type: string; bytes: Buffer }) {
    const dataTransfer = await page.evaluateHandle(
      ({ name, type, base64 }) => {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type }));
        return transfer;
      },
      { name: file.name, type: file.type, base64: file.bytes.toString("base64") },
    );
    await page.dispatchEvent(selector, "dragover", { dataTransfer });
    await page.dispatchEvent(selector, "drop", { dataTransfer });
  }

  /** Replaces the editor's whole text as one paste would (no auto-indent). */
  async function setYaml(text: string) {
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText(text);
  }

  let image: Buffer;

  it("uploads an image and a WAV, shows each one's progress, and both reach READY in the gallery", async () => {
    const corner = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0");
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="160"><rect width="100%" height="100%" fill="white"/><rect width="1" height="1" fill="#${corner}"/><text x="20" y="95" font-family="DejaVu Sans, sans-serif" font-size="48" fill="black">PANCAKE RECIPE</text></svg>`;
    image = await sharp(Buffer.from(svg)).png().toBuffer();
    const wav = await makeWav(1);
    await page.getByLabel("Choose files to upload").setInputFiles([
      { name: "pancake-card.png", mimeType: "image/png", buffer: image },
      { name: "tone.wav", mimeType: "audio/wav", buffer: wav },
      // More files than the studio uploads at once (2): the rest wait their turn, and their jobs join a jobsEvents stream (3 at most).
      ...["river", "mountain", "harbour", "meadow"].map((word, n) => ({
        name: `note-${n}.txt`,
        mimeType: "text/plain",
        buffer: Buffer.from(`A short note about the ${word}, number ${n}, written ${Date.now()}.`),
      })),
    ]);
    const uploads = page.getByRole("list", { name: "Uploads" });
    await uploads.getByRole("progressbar", { name: "Progress of pancake-card.png" }).waitFor();
    await expect.poll(() => uploads.locator('li[data-phase="ready"]').count(), { timeout: LONG }).toBe(6);
    expect(await uploads.locator('li[data-phase="failed"]').count()).toBe(0);
    const gallery = page.getByRole("list", { name: "Gallery" });
    await gallery.locator('li[data-status="READY"]', { hasText: "pancake-card.png" }).waitFor({ timeout: LONG });
    await gallery.locator('li[data-status="READY"]', { hasText: "tone.wav" }).waitFor({ timeout: LONG });
    await screenshot("gallery");

    // The asset page: its facts and what decoding found.
    await gallery.getByRole("link", { name: "pancake-card.png" }).click();
    await expect.poll(() => page.getByTestId("asset-status").textContent(), { timeout: LONG }).toBe("READY");
    await page.getByRole("heading", { name: "What decoding found" }).waitFor();
    // What OCR read, where the API tells it (Asset.text).
    const spans = await t.graphql(`{ __type(name: "IndexedTextSpan") { name } }`, {}, key);
    if (spans.data?.__type) await expect.poll(() => page.getByRole("region", { name: "OCR" }).innerText(), { timeout: 30_000 }).toContain("PANCAKE RECIPE");
    await screenshot("asset");

    // An audio asset: a player and its waveform, decoded in the browser from Asset.contentUrl.
    await page.goBack();
    await gallery.getByRole("link", { name: "tone.wav" }).click();
    await expect.poll(() => page.getByTestId("asset-status").textContent(), { timeout: LONG }).toBe("READY");
    const signed = await t.graphql(`{ __type(name: "Asset") { fields { name } } }`, {}, key);
    if (signed.data?.__type?.fields?.some((f: { name: string }) => f.name === "contentUrl")) {
      await page.getByRole("img", { name: "Waveform of tone.wav" }).waitFor();
    }

    // Delete, after the confirmation: back to the gallery, without it.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("heading", { name: "Assets" }).waitFor();
    await gallery.locator("li", { hasText: "pancake-card.png" }).waitFor();
    await expect.poll(() => gallery.locator("li", { hasText: "tone.wav" }).count()).toBe(0);
  }, 420_000);

  it("a text query finds the image by the words in it, and dropping the image finds it too", async () => {
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Search" }).click();
    await page.getByLabel("Search text").fill("pancake recipe");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    const results = page.getByRole("list", { name: "Results" });
    const hit = results.locator("li", { hasText: "pancake-card.png" });
    await hit.waitFor({ timeout: LONG });
    await expect.poll(async () => (await hit.getByTestId("score").textContent()) ?? "").toMatch(/score \d/);
    await screenshot("search-text");

    await dropFile('[data-testid="search-form"]', { name: "query.png", type: "image/png", bytes: image });
    await page.locator(".chip", { hasText: "query.png" }).waitFor();
    await results.locator("li", { hasText: "pancake-card.png" }).waitFor({ timeout: LONG });
    await screenshot("search-image");
  }, 420_000);

  it("the workflow editor: the graph follows the YAML, a step added and connected from the graph publishes and runs", async () => {
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Workflows" }).click();
    await page.getByRole("link", { name: "New workflow" }).click();
    const graph = page.getByTestId("workflow-graph");
    await graph.locator('[data-step-id="title"]').waitFor();

    // Typing in the YAML changes the graph.
    const typed = (await page.locator(".cm-content").innerText()).replace("id: title", "id: heading").replace("steps.title.", "steps.heading.");
    await setYaml(typed);
    await graph.locator('[data-step-id="heading"]').waitFor();
    expect(await graph.locator('[data-step-id="title"]').count()).toBe(0);

    // From the graph only: add a transform step from the palette, then drag an edge from heading to it.
    await page.getByLabel("Step type to add").selectOption("transform");
    await page.getByRole("button", { name: "Add step" }).click();
    await graph.locator('[data-step-id="transform_1"]').waitFor();
    await expect.poll(() => page.locator(".cm-content").innerText()).toContain("id: transform_1");
    const from = await page.locator('.react-flow__node[data-id="heading"] .react-flow__handle-bottom').boundingBox();
    const to = await page.locator('.react-flow__node[data-id="transform_1"] .react-flow__handle-top').boundingBox();
    expect(from && to).toBeTruthy();
    await page.mouse.move(from!.x + from!.width / 2, from!.y + from!.height / 2);
    await page.mouse.down();
    await page.mouse.move(to!.x + to!.width / 2, to!.y + to!.height / 2, { steps: 12 });
    await page.mouse.up();
    await expect.poll(() => page.locator(".cm-content").innerText()).toMatch(/needs: \[\s*heading\s*\]/);
    // An SVG group: attached is what can be asked of it.
    await page.locator('.react-flow__edge[data-id="heading->transform_1"]').waitFor({ state: "attached" });
    await screenshot("workflow-editor");

    await page.getByRole("button", { name: "Publish" }).click();
    await expect.poll(() => page.getByTestId("publish-message").textContent(), { timeout: 60_000 }).toContain("Published my-workflow v1");

    await page.getByLabel(/^topic/).fill("otters");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await expect.poll(() => page.getByTestId("run-status").textContent(), { timeout: LONG }).toBe("SUCCEEDED");
    await page.locator('[data-step-id="transform_1"][data-status="SUCCEEDED"]').waitFor({ timeout: LONG });
    await expect.poll(() => page.getByTestId("run-output").textContent()).toContain("Notes on otters");
    await screenshot("run");
  }, 420_000);

  it("a published file with mistakes shows the server's line:col problems; a `wait` step is resumed from its form", async () => {
    await page.goto(`${origin}/studio/workflows/new`);
    await page.locator(".cm-content").waitFor();
    await setYaml(["apiVersion: tessera/v1", "kind: Workflow", "slug: broken", "steps:", "  - id: a", "    uses: no.such.step", ""].join("\n"));
    await page.getByRole("button", { name: "Publish" }).click();
    await page.getByRole("list", { name: "Problems" }).locator("li").first().waitFor();
    expect(await page.getByRole("list", { name: "Problems" }).innerText()).toMatch(/\d+:\d+/);
    // The editor's own lint marks the line.
    await page.locator(".cm-lint-marker-error, .cm-lintRange-error").first().waitFor();

    // Completion offers the gateway's step types after `uses:`.
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.insertText("  - id: b\n    uses: ");
    await page.keyboard.press("Control+Space");
    await page.locator(".cm-tooltip-autocomplete", { hasText: "generate.text" }).waitFor();
    await page.keyboard.press("Escape");

    await setYaml(
      [
        "apiVersion: tessera/v1",
        "kind: Workflow",
        "slug: approval",
        "steps:",
        "  - id: ask",
        "    uses: wait",
        '    with: { prompt: "Ship it?", fields: { approved: { type: boolean } } }',
        "  - id: after",
        "    uses: transform",
        '    with: { answer: "${{ steps.ask.output.approved }}" }',
        "outputs:",
        '  answer: "${{ steps.after.output.answer }}"',
        "",
      ].join("\n"),
    );
    const graph = page.getByTestId("workflow-graph");
    await graph.locator('[data-step-id="after"]').waitFor();
    // Hovering a step type shows its description from the workflow JSON Schema.
    const word = await page.evaluate(() => {
      const line = [...document.querySelectorAll(".cm-line")].find((l) => l.textContent?.includes("uses: wait"));
      const walker = document.createTreeWalker(line!, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.textContent!.indexOf("wait");
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + 4);
        const box = range.getBoundingClientRect();
        return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
      }
      return null;
    });
    expect(word).toBeTruthy();
    await page.mouse.move(word!.x, word!.y);
    await page.locator(".cm-hover-doc", { hasText: "Pause the run" }).waitFor();
    // The selected node's `with`, as a form generated from the step type's JSON Schema, writes the YAML.
    await graph.locator('[data-step-id="ask"]').click();
    const panel = page.getByRole("region", { name: "Step ask" });
    await panel.getByLabel(/^prompt/).fill("Ship it now?");
    await panel.getByLabel(/^prompt/).press("Enter");
    await expect.poll(() => page.locator(".cm-content").innerText()).toContain("Ship it now?");
    await page.getByRole("button", { name: "Publish" }).click();
    await expect.poll(() => page.getByTestId("publish-message").textContent(), { timeout: 60_000 }).toContain("Published approval v1");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await expect.poll(() => page.getByTestId("run-status").textContent(), { timeout: LONG }).toBe("WAITING");
    const resume = page.getByRole("region", { name: "Resume ask" });
    await resume.getByText("Ship it now?").waitFor();
    await resume.getByLabel(/^approved/).check();
    await resume.getByRole("button", { name: "Resume" }).click();
    await expect.poll(() => page.getByTestId("run-status").textContent(), { timeout: LONG }).toBe("SUCCEEDED");
    await expect.poll(() => page.getByTestId("run-output").textContent()).toContain("true");
  }, 420_000);

  it("the API keys page: a READ key is created and shown once, listed, refused the keys page (FORBIDDEN inline), then revoked", async () => {
    await page.goto(`${origin}/studio/`);
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    const table = page.getByRole("table", { name: "API keys" });
    await table.getByText("this studio's key").waitFor();
    const name = `browser-read-${Date.now()}`;
    const form = page.getByRole("form", { name: "New key" });
    await form.getByLabel("Name").fill(name);
    await form.getByLabel("WRITE").uncheck();
    await form.getByLabel("ADMIN").uncheck();
    await form.getByLabel("READ").check();
    await form.getByRole("button", { name: "Create key" }).click();
    const createdBox = page.getByRole("region", { name: "Created key" });
    await createdBox.getByText("it will not be shown again").waitFor();
    const newKey = await createdBox.getByLabel(`Key ${name}`).inputValue();
    expect(newKey.length).toBeGreaterThan(20);
    const row = table.locator("tr", { hasText: name });
    await row.waitFor();
    expect(await row.getAttribute("data-revoked")).toBe("false");
    expect(await row.locator("td").nth(2).innerText()).toBe("READ");
    expect(await row.innerText()).not.toContain("this studio's key");
    await screenshot("keys");

    // The new key lacks ADMIN: in a tab of its own the keys page shows the gateway's FORBIDDEN message.
    const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const readPage = await other.newPage();
      readPage.setDefaultTimeout(60_000);
      await readPage.goto(`${origin}/studio/`);
      await readPage.getByLabel("API key").fill(newKey);
      await readPage.getByRole("button", { name: "Open studio" }).click();
      await readPage.getByRole("heading", { name: "Assets" }).waitFor();
      await readPage.getByRole("link", { name: "API keys" }).click();
      await readPage.getByRole("alert").filter({ hasText: "lacks the `admin` scope" }).waitFor();
    } finally {
      await other.close();
    }

    // Revoke asks first; cancelling changes nothing, confirming revokes.
    await row.getByRole("button", { name: `Revoke ${name}` }).click();
    const confirmBox = page.getByRole("alertdialog", { name: "Confirm revoke" });
    await confirmBox.getByText(`Revoke key ${name}?`).waitFor();
    await confirmBox.getByRole("button", { name: "Cancel" }).click();
    await confirmBox.waitFor({ state: "detached" });
    expect(await row.getAttribute("data-revoked")).toBe("false");
    await row.getByRole("button", { name: `Revoke ${name}` }).click();
    await confirmBox.getByRole("button", { name: "Confirm revoke" }).click();
    await expect.poll(() => row.getAttribute("data-revoked"), { timeout: 60_000 }).toBe("true");
    await row.getByText("revoked").waitFor();
    expect(await row.getByRole("button", { name: /Revoke/ }).count()).toBe(0);
    // The studio's own key asks with an explicit warning; cancelled here.
    await table.locator("tr", { hasText: "this studio's key" }).getByRole("button", { name: /^Revoke/ }).click();
    await confirmBox.getByText("This is the key this studio is using.").waitFor();
    await confirmBox.getByRole("button", { name: "Revoke the key in use" }).waitFor();
    await confirmBox.getByRole("button", { name: "Cancel" }).click();
    // The revoked key no longer works.
    const answer = await t.graphql(`query { workflows { slug } }`, {}, newKey);
    expect(answer.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  }, 300_000);

  it("the models page lists the served models; the studio fits a narrow window in dark mode; GraphiQL starts offline", async () => {
    await page.goto(`${origin}/studio/models`);
    await page.getByRole("heading", { name: "Models" }).waitFor();
    await page.locator("tbody tr").first().waitFor();
    // A narrow window in dark mode: nothing wider than the window.
    await page.setViewportSize({ width: 390, height: 800 });
    await page.emulateMedia({ colorScheme: "dark" });
    for (const route of ["assets", "search", "workflows/new"]) {
      await page.goto(`${origin}/studio/${route}`);
      await page.locator("main h1").waitFor();
      if (route === "workflows/new") await page.getByTestId("workflow-graph").locator(".react-flow__node").first().waitFor();
      await expect.poll(() => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
      await screenshot(`narrow-dark-${route.replace("/", "-")}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: "light" });
    await page.goto(`${origin}/graphql`);
    await page.locator(".graphiql-container").first().waitFor({ timeout: 120_000 });
    expect(await page.locator("#root").innerText()).not.toContain("Loading");
  }, 300_000);
});
