/**
 * Asset metadata is free-form JSON, but both stores filter only on declared
 * fields. So metadata is stored as a list of `path=value` strings and a filter
 * becomes "contains all of these strings": equality on any key, nested keys as
 * dotted paths, and an array matching any of its elements.
 */
export function metadataPairs(metadata: Record<string, unknown>): string[] {
  const pairs = new Set<string>();
  const visit = (value: unknown, path: string) => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, path);
    } else if (value !== null && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) visit(inner, path ? `${path}.${key}` : key);
    } else if (path) {
      pairs.add(`${path}=${value === null ? "null" : String(value)}`);
    }
  };
  visit(metadata, "");
  return [...pairs];
}
