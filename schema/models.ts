import type { ModelInfo } from "../services/models/model-runtime.ts";
import { ModalityEnum } from "./assets.ts";
import { builder } from "./builder.ts";

const ModelRef = builder.objectRef<ModelInfo>("Model").implement({
  description: "A model this deployment serves (its weights are present), from a manifest in models/.",
  fields: (t) => ({
    name: t.exposeString("name", { description: "The model's name in its manifest." }),
    modality: t.field({ type: ModalityEnum, description: "The modality it reads.", resolve: (model) => model.modality }),
    task: t.exposeString("task", { description: "embed, ocr, vad, transcribe, caption, generate, speech or project" }),
    dimensions: t.exposeInt("dimensions", { nullable: true, description: "Vector size, for embedders." }),
    device: t.exposeString("device", { description: "cpu or cuda: where this process runs it." }),
    space: t.exposeString("space", { nullable: true, description: "The vector space an embedder writes: image-text, sentence or audio." }),
  }),
});

builder.queryField("models", (t) =>
  t.field({
    type: [ModelRef],
    description: "The models served here; listing them loads none.",
    // Behind the `project` scope like every Query field; it reads nothing of the project, so needs no narrowed context.
    resolve: (_root, _args, context) => context.app.models.list(),
  }),
);
