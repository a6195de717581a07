// `npm start` runs this first (prestart): builds the studio when there is no build yet, so a fresh checkout's
// `npm start` serves it at /studio. Without Vite (a production install without dev dependencies) it says so and
// the gateway starts anyway, answering /studio with what to run.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));
if (!existsSync(new URL("dist/index.html", import.meta.url))) {
  let vite;
  try {
    vite = await import("vite");
  } catch {
    console.warn("studio: no build in studio/dist and Vite is not installed (dev dependencies); /studio will say how to build it");
  }
  if (vite) {
    console.log("studio: building it once (npm run build:studio)…");
    await vite.build({ root, configFile: fileURLToPath(new URL("vite.config.ts", import.meta.url)), logLevel: "warn" });
  }
}
