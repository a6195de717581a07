import type { ModelAdapter } from "../model-adapter.ts";
import { hfClipAdapter } from "./hf-clip.ts";

/** Adapters by the name a manifest's `adapter` field uses. Adding a format is adding a line here. */
export const modelAdapters: Record<string, ModelAdapter> = {
  "hf-clip": hfClipAdapter,
};
