import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import { Readable } from "node:stream";
import type { Plugin } from "graphql-yoga";
import rangeParser from "range-parser";
import sharp from "sharp";
import type { AppContext } from "../app/app-context.ts";
import { CONTENT_PATH_PREFIX, verifyContentUrl } from "../assets/content-urls.ts";

/** Longest side of a thumbnail, in pixels. */
export const THUMBNAIL_MAX_SIDE = 320;
/** Images larger than this are not decoded for a thumbnail (the same bound ingest uses by default). */
const THUMBNAIL_MAX_INPUT_PIXELS = 100_000_000;

type ContentHost = Pick<AppContext, "config" | "db" | "blobs" | "logger">;

/**
 * Serves signed content URLs (`Asset.contentUrl`, `Asset.thumbnailUrl`) at `/content/<project>/<asset>[/thumbnail]`:
 * no API key, because a browser's `<audio src>` sends none; the HMAC signature over project, asset, variant and
 * expiry is the permission, and the asset is looked up within the signed project only. The original bytes support
 * single byte ranges (206, `Accept-Ranges`, `Content-Range`; 416 for a range past the end), so audio and video seek.
 */
export function useContentRoute(app: ContentHost): Plugin {
  return {
    async onRequest({ url, request, endResponse, fetchAPI }) {
      if (!url.pathname.startsWith(CONTENT_PATH_PREFIX)) return;
      const refuse = (status: number, message: string, headers: Record<string, string> = {}) =>
        endResponse(
          new fetchAPI.Response(request.method === "HEAD" ? null : JSON.stringify({ error: message }), {
            status,
            headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
          }),
        );
      if (request.method !== "GET" && request.method !== "HEAD") return refuse(405, "only GET and HEAD", { allow: "GET, HEAD" });
      const check = verifyContentUrl(app.config, url);
      if (!check.ok) return refuse(check.status, check.reason);
      const asset = await app.db.asset.findFirst({
        where: { id: check.assetId, projectId: check.projectId },
        select: { sha256: true, mimeType: true, modality: true, filename: true },
      });
      if (!asset) return refuse(404, "no such asset: it may have been deleted");
      let filePath: string;
      let size: number;
      try {
        filePath = await app.blobs.localPath(asset.sha256);
        size = (await fs.stat(filePath)).size;
      } catch {
        return refuse(404, "the asset's stored bytes are gone");
      }
      const common = {
        "cache-control": "private, max-age=60",
        "x-content-type-options": "nosniff",
        // Whatever the bytes are (an HTML text asset, an SVG), they never run as a page of this origin.
        "content-security-policy": "sandbox; default-src 'none'",
        ...(asset.filename ? { "content-disposition": `inline; filename*=UTF-8''${encodeURIComponent(asset.filename)}` } : {}),
      };

      if (check.variant === "thumbnail") {
        if (asset.modality !== "IMAGE") return refuse(404, "only images have thumbnails");
        let thumbnail: Buffer;
        try {
          // sharp decodes on libuv's thread pool, off the event loop.
          thumbnail = await sharp(filePath, { limitInputPixels: THUMBNAIL_MAX_INPUT_PIXELS, failOn: "error" })
            .rotate()
            .resize(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE, { fit: "inside", withoutEnlargement: true })
            .webp({ quality: 75 })
            .toBuffer();
        } catch (error) {
          app.logger.debug({ err: error }, "thumbnail failed");
          return refuse(422, "the image could not be decoded for a thumbnail");
        }
        return endResponse(
          new fetchAPI.Response(request.method === "HEAD" ? null : new Uint8Array(thumbnail), {
            status: 200,
            headers: { ...common, "content-type": "image/webp", "content-length": String(thumbnail.length) },
          }),
        );
      }

      const headers: Record<string, string> = { ...common, "content-type": asset.mimeType, "accept-ranges": "bytes", etag: `"${asset.sha256}"` };
      const rangeHeader = request.headers.get("range");
      // A malformed Range (-2) is ignored, as RFC 9110 allows; several ranges get the whole body (200).
      const ranges = rangeHeader ? rangeParser(size, rangeHeader, { combine: true }) : -2;
      if (ranges === -1) return refuse(416, `the range is outside the content's ${size} bytes`, { "content-range": `bytes */${size}`, "accept-ranges": "bytes" });
      const range = Array.isArray(ranges) && ranges.type === "bytes" && ranges.length === 1 ? ranges[0]! : null;
      const start = range ? range.start : 0;
      const end = range ? range.end : size - 1;
      const length = size === 0 ? 0 : end - start + 1;
      if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
      headers["content-length"] = String(length);
      const body =
        request.method === "HEAD" || length === 0
          ? null
          : (Readable.toWeb(createReadStream(filePath, { start, end })) as unknown as ReadableStream<Uint8Array>);
      return endResponse(new fetchAPI.Response(body, { status: range ? 206 : 200, headers }));
    },
  };
}
