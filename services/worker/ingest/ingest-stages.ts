import { decodeStage } from "./decode-stage.ts";
import { encodeStage } from "./encode-stage.ts";
import { indexStage } from "./index-stage.ts";
import type { IngestStage } from "./ingest-stage.ts";

/** The ingest pipeline, in order. Adding a stage is adding a line here. */
export const ingestStages: IngestStage[] = [
  {
    name: "verify-blob",
    async run(asset, _state, { app }) {
      if (!(await app.blobs.has(asset.sha256))) throw new Error(`blob ${asset.sha256} is missing from the blob store`);
    },
  },
  decodeStage,
  encodeStage,
  indexStage, // last: stores what the stages before it produced
];
