// The repository's example workflows, bundled as text: a starting point that needs no typing.
const files = import.meta.glob("../../workflows/examples/*.yaml", { query: "?raw", import: "default", eager: true }) as Record<string, string>;

export const EXAMPLES = Object.entries(files).map(([path, source]) => ({ name: path.split("/").pop()!.replace(/\.yaml$/, ""), source }));
