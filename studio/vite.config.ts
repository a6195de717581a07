import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built into studio/dist (gitignored); the gateway serves it at /studio (services/gateway/studio-route.ts).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/studio/",
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 4000 },
  // `npx vite studio` for development: the API of a gateway on :4000.
  server: { proxy: { "/graphql": "http://127.0.0.1:4000", "/schemas": "http://127.0.0.1:4000", "/content": "http://127.0.0.1:4000" } },
});
