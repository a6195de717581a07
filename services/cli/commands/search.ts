import { openAsBlob } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { SearchDocument, type SearchInput } from "../../../packages/client/index.ts";
import { gateway } from "../gateway-client.ts";

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
      const input: SearchInput = {
        limit: Number(options.limit),
        ...(text !== undefined ? { text } : {}),
        ...(options.asset ? { assetId: options.asset } : {}),
        ...(options.modality ? { modalities: options.modality.map((modality) => modality.toUpperCase() as NonNullable<SearchInput["modalities"]>[number]) } : {}),
        ...(options.alpha !== undefined ? { hybrid: { alpha: Number(options.alpha) } } : {}),
        ...(options.tag ? { filter: { tags: options.tag } } : {}),
      };
      // A query file goes as a multipart upload (streamed), in the place of input.file.
      const files = options.file ? [{ path: "variables.input.file", blob: await openAsBlob(options.file), name: path.basename(options.file) }] : [];
      const { search } = await gateway().request(SearchDocument, { input: options.file ? { ...input, file: null } : input }, { files });
      const hits = search.hits;
      if (options.json) console.log(JSON.stringify(hits, null, 2));
      else printHits(hits);
    });
}
