import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs; secrets in known places are redacted. */
export function createLogger(level: string, name = "tessera"): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ["req.headers.authorization", "*.apiKey", "*.authorization", "apiKey", "headers.authorization"],
      censor: "[redacted]",
    },
  });
}
