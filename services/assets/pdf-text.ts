import { ErrorCode, TesseraError } from "../core/errors.ts";
import { runMediaTool } from "./media-tool.ts";

export type PdfText = { text: string; pages: number };

/**
 * The text layer of a PDF, by poppler's pdftotext (pages separated by form
 * feeds). A PDF without one (a scan) is refused: OCR of PDFs is not done here.
 */
export async function extractPdfText(filePath: string, options: { timeoutMs: number; maxBytes?: number }): Promise<PdfText> {
  const info = await runMediaTool("pdfinfo", [filePath], { timeoutMs: options.timeoutMs, maxOutputBytes: 1024 * 1024 });
  const pages = Number(/^Pages:\s+(\d+)/m.exec(info.stdout.toString("utf8"))?.[1] ?? 0);
  if (!pages) throw new TesseraError(ErrorCode.CORRUPT_MEDIA, "the PDF has no pages");
  const { stdout } = await runMediaTool("pdftotext", ["-q", "-enc", "UTF-8", "-eol", "unix", filePath, "-"], {
    timeoutMs: options.timeoutMs,
    maxOutputBytes: options.maxBytes ?? 64 * 1024 * 1024,
  });
  const text = stdout.toString("utf8").replace(/\f$/, "");
  if (!text.trim()) {
    throw new TesseraError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the PDF has no text layer (a scanned PDF needs OCR, which is not supported for PDFs)");
  }
  return { text, pages };
}
