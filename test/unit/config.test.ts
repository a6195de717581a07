import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../services/core/config.ts";

describe("configuration", () => {
  it("uses documented defaults", () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(4000);
    expect(config.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(config.WEAVIATE_URL).toBeUndefined();
    expect(config.WEAVIATE_COLLECTION).toBe("TesseraVector");
    expect(config.WEAVIATE_VECTOR_INDEX).toBe("flat");
    expect(config.dataDir).toMatch(/\.data$/);
  });

  it("names every bad variable in one error", () => {
    let error: unknown;
    try {
      loadConfig({ DATABASE_URL: "nope", PORT: "eighty", REDIS_URL: "http://x", WEAVIATE_VECTOR_INDEX: "ivf", WEAVIATE_COLLECTION: "lower" });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain('DATABASE_URL: must be a postgresql:// URL (got "nope")');
    expect(message).toContain("PORT");
    expect(message).toContain("REDIS_URL");
    expect(message).toContain("WEAVIATE_VECTOR_INDEX");
    expect(message).toContain("WEAVIATE_COLLECTION: must be a Weaviate class name");
  });
});
