import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin } from "graphql-yoga";

export const STUDIO_PATH = "/studio";

/** Where `npm run build:studio` writes the built single-page app (gitignored). */
export const STUDIO_BUILD_DIR = fileURLToPath(new URL("../../studio/dist/", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".wasm": "application/wasm",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

export type StudioFile = { status: number; body: Uint8Array | string; headers: Record<string, string> };

const NOT_BUILT = (dir: string) =>
  `<!doctype html><meta charset="utf-8"><title>Tessera Studio is not built</title>` +
  `<h1>Tessera Studio is not built</h1><p>No build was found in <code>${escapeHtml(dir)}</code>. ` +
  `Run <code>npm run build:studio</code> (or <code>npm start</code>, which builds it when missing), then reload this page.</p>` +
  `<p>The GraphQL API at <a href="/graphql">/graphql</a> works without it.</p>`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

async function readFileOrNull(file: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "EISDIR" || code === "ENOTDIR") return null;
    throw error;
  }
}

/**
 * The answer for a path under /studio: a file of the build, else the app's
 * index.html (client-side routes such as /studio/assets/123), else 503 with
 * what to run when there is no build at all. Never a file outside `dir`.
 */
export async function studioFile(dir: string, pathname: string): Promise<StudioFile> {
  const root = path.resolve(dir);
  const index = await readFileOrNull(path.join(root, "index.html"));
  if (!index) {
    return { status: 503, body: NOT_BUILT(root), headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } };
  }
  let relative: string;
  try {
    relative = decodeURIComponent(pathname.slice(STUDIO_PATH.length)).replace(/^\/+/, "");
  } catch {
    return { status: 400, body: "bad path", headers: { "content-type": "text/plain; charset=utf-8" } };
  }
  const file = path.resolve(root, relative);
  const inside = file.startsWith(root + path.sep);
  const extension = path.extname(file);
  if (inside && relative !== "" && relative !== "index.html") {
    const bytes = await readFileOrNull(file);
    if (bytes) {
      // Vite names built files by their content hash: they never change under the same name.
      const immutable = relative.startsWith("assets/");
      return {
        status: 200,
        body: bytes,
        headers: {
          "content-type": CONTENT_TYPES[extension] ?? "application/octet-stream",
          "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
        },
      };
    }
    // A missing file (a stale hashed name) is a 404; a route of the app is its page.
    if (extension) return { status: 404, body: "not found", headers: { "content-type": "text/plain; charset=utf-8" } };
  }
  return { status: 200, body: index, headers: { "content-type": CONTENT_TYPES[".html"]!, "cache-control": "no-cache" } };
}

/** Serves the built studio at /studio (public files: the app asks for an API key itself and calls /graphql with it). */
export function useStudio(options: { dir?: string } = {}): Plugin {
  const dir = options.dir ?? STUDIO_BUILD_DIR;
  return {
    async onRequest({ url, request, endResponse, fetchAPI }) {
      if (url.pathname !== STUDIO_PATH && !url.pathname.startsWith(`${STUDIO_PATH}/`)) return;
      if (request.method !== "GET" && request.method !== "HEAD") {
        endResponse(new fetchAPI.Response("method not allowed", { status: 405, headers: { allow: "GET, HEAD" } }));
        return;
      }
      // Relative asset URLs in index.html need the trailing slash.
      if (url.pathname === STUDIO_PATH) {
        endResponse(new fetchAPI.Response(null, { status: 308, headers: { location: `${STUDIO_PATH}/${url.search}` } }));
        return;
      }
      const answer = await studioFile(dir, url.pathname);
      endResponse(
        new fetchAPI.Response(request.method === "HEAD" ? null : (answer.body as BodyInit), {
          status: answer.status,
          headers: { ...answer.headers, "x-content-type-options": "nosniff" },
        }),
      );
    },
  };
}
