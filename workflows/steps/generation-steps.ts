import { agentStep } from "./agent-step.ts";
import { generateCaptionStep } from "./generate-caption-step.ts";
import { generateImageStep } from "./generate-image-step.ts";
import { generateSpeechStep } from "./generate-speech-step.ts";
import { generateTextStep } from "./generate-text-step.ts";
import { generateTranscriptStep } from "./generate-transcript-step.ts";
import { generateVqaStep } from "./generate-vqa-step.ts";
import type { StepType } from "./step-type.ts";

/** The language-model steps, registered together in step-registry.ts. */
export const generationSteps = [
  generateTextStep,
  generateCaptionStep,
  generateVqaStep,
  generateSpeechStep,
  generateTranscriptStep,
  generateImageStep,
  agentStep,
] as StepType[];
