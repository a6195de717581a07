import fs from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";

const SEARCH = /* GraphQL */ `
  query Search($input: SearchInput!) {
    search(input: $input) { hits { score snippet spaces asset { id modality mimeType filename } } }
  }
`;

type Hit = {
  score: number;
  snippet: string | null;
  spaces: string[];
  asset: { id: string; modality: string; mimeType: string; filename: string | null };
};

type SearchOptions = {
  file?: string;
  asset?: string;
  limit?: string;
  modality?: string[];
  alpha?: string;
  tag?: string[];
  json?: boolean;
};

/** The gateway's GraphQL endpoint: TESSERA_URL may name the server or its /graphql path. */
function endpoint(): URL {
  const url = new URL(process.env.TESSERA_URL ?? "http://127.0.0.1:4000");
  if (!url.pathname.endsWith("/graphql")) url.pathname = `${url.pathname.replace(/\/$/, "")}/graphql`;
  return url;
}

/** One GraphQL call; a file goes as a multipart request (the GraphQL multipart request spec). */
async function callGateway(input: Record<string, unknown>, file?: { name: string; bytes: Buffer }) {
  const key = process.env.TESSERA_API_KEY;
  if (!key) throw new Error("set TESSERA_API_KEY (make one with `npx tessera keys create --project <name>`)");
  const url = endpoint();
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, "graphql-require-preflight": "1" };
  let body: string | FormData;
  if (file) {
    const form = new FormData();
    form.set("operations", JSON.stringify({ query: SEARCH, variables: { input: { ...input, file: null } } }));
    form.set("map", JSON.stringify({ 0: ["variables.input.file"] }));
    form.set("0", new Blob([new Uint8Array(file.bytes)]), file.name);
    body = form;
  } else {
    headers["content-type"] = "application/json";
    body = JSON.stringify({ query: SEARCH, variables: { input } });
  }
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers, body });
  } catch (error) {
    throw new Error(`cannot reach the gateway at ${url} (is \`npm start\` running? set TESSERA_URL): ${(error as Error).message}`);
  }
  const result = (await response.json().catch(() => null)) as {
    data?: { search: { hits: Hit[] } };
    errors?: Array<{ message: string; extensions?: { code?: string } }>;
  } | null;
  if (!result) throw new Error(`the gateway answered ${response.status} without a GraphQL result`);
  if (result.errors?.length) {
    throw new Error(result.errors.map((error) => `${error.extensions?.code ?? "ERROR"}: ${error.message}`).join("; "));
  }
  return result.data!.search.hits;
}

function printHits(hits: Hit[]) {
  if (hits.length === 0) {
    console.error("no hits");
    return;
  }
  for (const [index, hit] of hits.entries()) {
    const name = hit.asset.filename ? ` ${hit.asset.filename}` : "";
    console.log(`${String(index + 1).padStart(2)}. ${hit.score.toFixed(4)}  ${hit.asset.modality.padEnd(5)}  ${hit.asset.id}${name}  [${hit.spaces.join(", ")}]`);
    if (hit.snippet) console.log(`    ${JSON.stringify(hit.snippet)}`);
  }
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerSearchCommands(program: Command) {
  program
    .command("search")
    .description("search the project's assets through the gateway (TESSERA_URL, TESSERA_API_KEY): by text, --file or --asset")
    .argument("[text]", "what to look for")
    .option("--file <path>", "search by an image, audio, video or text file")
    .option("--asset <id>", "search by an asset already ingested")
    .option("--limit <n>", "how many hits", "10")
    .option("--modality <modality>", "only hits of this modality (TEXT, IMAGE, AUDIO, VIDEO); repeatable", collect)
    .option("--alpha <alpha>", "hybrid ranking: 1 vectors only, 0 keywords only")
    .option("--tag <tag>", "only assets with this tag; repeatable", collect)
    .option("--json", "print the hits as JSON")
    .action(async (text: string | undefined, options: SearchOptions) => {
      const given = [text, options.file, options.asset].filter((value) => value !== undefined);
      if (given.length !== 1) throw new Error("give exactly one of <text>, --file <path> or --asset <id>");
      const input: Record<string, unknown> = {
        limit: Number(options.limit),
        ...(text !== undefined ? { text } : {}),
        ...(options.asset ? { assetId: options.asset } : {}),
        ...(options.modality ? { modalities: options.modality.map((modality) => modality.toUpperCase()) } : {}),
        ...(options.alpha !== undefined ? { hybrid: { alpha: Number(options.alpha) } } : {}),
        ...(options.tag ? { filter: { tags: options.tag } } : {}),
      };
      const file = options.file ? { name: path.basename(options.file), bytes: await fs.readFile(options.file) } : undefined;
      const hits = await callGateway(input, file);
      if (options.json) console.log(JSON.stringify(hits, null, 2));
      else printHits(hits);
    });
}
