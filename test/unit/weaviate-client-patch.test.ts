import fs from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";

/*
 * patches/weaviate-client+3.14.0.patch (applied by patch-package in postinstall): the published client
 * polled every 500 ms for the end of a batch's serialisation, so every insertMany of two or more
 * objects took half a second (bench/README.md, search). Both of its builds must carry the fix.
 */
it("installs weaviate-client with the batch serialisation patch, in its ESM and CommonJS builds", () => {
  const packageDir = path.resolve(import.meta.dirname, "../../node_modules/weaviate-client");
  for (const build of ["esm", "cjs"]) {
    const source = fs.readFileSync(path.join(packageDir, "dist", "node", build, "collections", "serialize", "index.js"), "utf8");
    expect(source).toContain("Tessera patch");
    expect(source).not.toContain("setTimeout(() => poll(resolve), 500)");
  }
});
