import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { closeModelRouter } from "../../services/generation/app-model-router.ts";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "./fake-openai-server.ts";
import { startTestApp, type TestApp } from "./test-app.ts";

type StartOptions = NonNullable<Parameters<typeof startTestApp>[0]>;

/** The environment variable the fake provider's key is read from (`apiKeyEnv`). */
const FAKE_KEY_ENV = "FAKE_PROVIDER_API_KEY";

export type FakeProviderApp = {
  t: TestApp;
  fake: FakeOpenAIServer;
  /** A folder of the test's own, removed by close(). */
  scratch: string;
  close(): Promise<void>;
};

/**
 * A test app whose model router talks to a fake OpenAI-compatible server, the provider `fake`. `models` are the
 * aliases (`{ "llm.default": { provider: "fake", model: "tiny-chat" } }`; `local` ones too), written as PROVIDERS_FILE
 * in a scratch folder: the router reads its configuration from the process environment, as in production. `app`
 * says how to start the app, or prepares the scratch folder first (fixture models) and then says it. close() stops
 * the router, the app and the fake, puts PROVIDERS_FILE and the key's variable back, and removes the folder.
 */
export async function startFakeProviderApp(options: {
  models: Record<string, Record<string, unknown>>;
  /** The fake provider's API key, so a test can check it never leaks. */
  apiKey?: string;
  app?: StartOptions | ((scratch: string) => Promise<StartOptions>);
}): Promise<FakeProviderApp> {
  const before = { PROVIDERS_FILE: process.env.PROVIDERS_FILE, [FAKE_KEY_ENV]: process.env[FAKE_KEY_ENV] };
  const fake = await startFakeOpenAIServer();
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), "tessera-fake-provider-"));
  const providersFile = path.join(scratch, "providers.json");
  const provider = { kind: "openai-compatible", baseUrl: fake.baseUrl, ...(options.apiKey ? { apiKeyEnv: FAKE_KEY_ENV } : {}) };
  await fs.writeFile(providersFile, JSON.stringify({ providers: { fake: provider }, models: options.models }));
  process.env.PROVIDERS_FILE = providersFile;
  if (options.apiKey) process.env[FAKE_KEY_ENV] = options.apiKey;

  const restore = async () => {
    await fake.close();
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await fs.rm(scratch, { recursive: true, force: true });
  };
  let t: TestApp;
  try {
    t = await startTestApp(typeof options.app === "function" ? await options.app(scratch) : options.app);
  } catch (error) {
    await restore();
    throw error;
  }
  return {
    t,
    fake,
    scratch,
    async close() {
      await closeModelRouter(t.app);
      await t.close();
      await restore();
    },
  };
}
