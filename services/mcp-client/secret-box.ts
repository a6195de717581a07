import type { Config } from "../core/config.ts";
import { ErrorCode, TesseraError } from "../core/errors.ts";
import { SecretBox } from "../core/secret-box.ts";

/** Outside production, without MCP_SECRETS_KEY: a fixed key, so development needs no set-up (and protects nothing). */
const DEVELOPMENT_KEY = "tessera-development-only-mcp-secrets-key";

/** The box for this deployment's MCP secrets; in production only with MCP_SECRETS_KEY set. */
export function mcpSecretBox(config: Pick<Config, "MCP_SECRETS_KEY" | "NODE_ENV">): SecretBox {
  if (config.MCP_SECRETS_KEY) return new SecretBox(config.MCP_SECRETS_KEY, "MCP_SECRETS_KEY");
  if (config.NODE_ENV === "production") {
    throw new TesseraError(ErrorCode.SERVICE_UNAVAILABLE, "MCP server headers cannot be stored or used: set MCP_SECRETS_KEY (at least 32 characters)");
  }
  return new SecretBox(DEVELOPMENT_KEY, "MCP_SECRETS_KEY");
}
