import { z } from "zod";
// The enums module alone, not the Prisma client core/database.ts re-exports it with: model manifests are
// read where no database is (the CLI's `models` command, training), and the client takes most of a second to load.
import { Modality } from "../../generated/prisma/enums.ts";

/** The Modality enum of prisma/schema.prisma as a zod schema: for payloads, workflow steps and manifests. */
export const modalitySchema = z.enum(Modality);
