import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..", "..");
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  license?: string;
  dependencies: Record<string, string>;
};

describe("packaging", () => {
  it("has a LICENSE, and package.json names it", () => {
    const license = readFileSync(path.join(root, "LICENSE"), "utf8");
    expect(license).toContain("Apache License");
    expect(license).toContain("Version 2.0, January 2004");
    expect(pkg.license).toBe("Apache-2.0");
  });

  it("declares protobufjs for weaviate-client, which imports it without declaring it", () => {
    // Without the declaration npm nests protobufjs under other packages and weaviate-client fails to load.
    const fromWeaviate = createRequire(createRequire(path.join(root, "package.json")).resolve("weaviate-client"));
    expect(() => fromWeaviate.resolve("protobufjs/minimal.js")).not.toThrow();
    expect(pkg.dependencies.protobufjs).toBeDefined();
  });

  it("declares @energetic-ai/core, which the text encoder thread imports (it is only a peer of @energetic-ai/embeddings)", () => {
    const worker = readFileSync(path.join(root, "services/models/text-encoder-thread-worker.mjs"), "utf8");
    expect(worker).toContain('import("@energetic-ai/core")');
    expect(pkg.dependencies["@energetic-ai/core"]).toBe("0.2.0");
  });
});
