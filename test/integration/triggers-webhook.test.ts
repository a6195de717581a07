import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signatureHeader } from "../../services/webhooks/webhook-signature.ts";
import { startTestApp, type TestApp } from "../support/test-app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ worker: true });
});
afterAll(async () => {
  await t?.close();
});

const PUBLISH = `mutation ($d: String!) { publishWorkflow(definition: $d) { id } }`;
const workflow = (slug: string, on: string) => `apiVersion: tessera/v1
kind: Workflow
slug: ${slug}
inputs:
  text: { type: string }
  count: { type: integer, required: false, default: 1 }
steps:
  - id: echo
    uses: transform
    with: { text: "\${{ inputs.text }}", count: "\${{ inputs.count }}" }
outputs:
  text: "\${{ steps.echo.output.text }}"
${on}`;

async function webhookTrigger(key: string, slug: string, input?: unknown) {
  await t.graphql(PUBLISH, { d: workflow(slug, "") }, key);
  const created = await t.graphql(
    `mutation ($slug: String!, $input: JSON) { createWebhookTrigger(slug: $slug, input: $input) { secret trigger { id url kind hasSecret } } }`,
    { slug, input },
    key,
  );
  expect(created.errors).toBeUndefined();
  return created.data.createWebhookTrigger as { secret: string; trigger: { id: string; url: string; kind: string; hasSecret: boolean } };
}

function post(url: string, body: string, headers: Record<string, string>) {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
}

const stored = async (projectId: string) => ({
  runs: await t.app.db.run.count({ where: { projectId } }),
  deliveries: await t.app.db.triggerDelivery.count({ where: { trigger: { projectId } } }),
});

describe("webhook triggers", () => {
  it("a signed POST starts a run with the body mapped to inputs; the secret is shown once", async () => {
    const { key, projectId } = await t.createProject();
    const { secret, trigger } = await webhookTrigger(key, "hooked", { text: "${{ body.message }}", count: "${{ $count(body.items) }}" });
    expect(secret).toMatch(/^whsec_/);
    expect(trigger).toMatchObject({ kind: "WEBHOOK", hasSecret: true });
    expect(trigger.url).toBe(`${new URL(t.url).origin}/hooks/triggers/${trigger.id}`);
    // Never returned again, nor stored in the clear.
    const row = await t.app.db.workflowTrigger.findUniqueOrThrow({ where: { id: trigger.id } });
    expect(JSON.stringify(row)).not.toContain(secret.slice(6));

    const body = JSON.stringify({ message: "hello", items: [1, 2, 3] });
    const response = await post(trigger.url, body, { "tessera-signature": signatureHeader(secret, body), "tessera-delivery": "d-1" });
    expect(response.status).toBe(202);
    const { runId, duplicate } = (await response.json()) as { runId: string; duplicate: boolean };
    expect(duplicate).toBe(false);
    const run = await t.app.db.run.findUniqueOrThrow({ where: { id: runId } });
    expect(run).toMatchObject({ projectId, input: { text: "hello", count: 3 } });

    // The same delivery id again (a sender's retry, freshly signed): the same run, no second one.
    const again = await post(trigger.url, body, { "tessera-signature": signatureHeader(secret, body), "tessera-delivery": "d-1" });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ runId, duplicate: true });
    expect(await stored(projectId)).toEqual({ runs: 1, deliveries: 1 });
  });

  it("a bad signature, a stale timestamp, a missing header or another trigger's secret get 401 and store nothing", async () => {
    const { key, projectId } = await t.createProject();
    const { secret, trigger } = await webhookTrigger(key, "guarded");
    const other = await webhookTrigger(key, "guarded-other");
    const body = JSON.stringify({ text: "hi" });
    const stale = Math.floor(Date.now() / 1000) - 3600;
    const attempts: Record<string, string>[] = [
      { "tessera-signature": signatureHeader(secret, body + " ") },
      { "tessera-signature": signatureHeader("whsec_wrong", body) },
      { "tessera-signature": signatureHeader(secret, body, stale) },
      { "tessera-signature": signatureHeader(secret, body, Math.floor(Date.now() / 1000) + 3600) },
      { "tessera-signature": signatureHeader(other.secret, body) },
      { "tessera-signature": "t=1,v1=zz" },
      {},
    ];
    for (const headers of attempts) {
      const response = await post(trigger.url, body, { ...headers, "tessera-delivery": "d-x" });
      expect(response.status).toBe(401);
      const answer = (await response.json()) as { error: { code: string; message: string } };
      expect(answer.error.code).toBe("UNAUTHENTICATED");
    }
    expect(await stored(projectId)).toEqual({ runs: 0, deliveries: 0 });
    // A body the workflow's inputs refuse: 400, and nothing stored either (the delivery id is free again).
    const wrong = JSON.stringify({ text: 5 });
    const refused = await post(trigger.url, wrong, { "tessera-signature": signatureHeader(secret, wrong), "tessera-delivery": "d-y" });
    expect(refused.status).toBe(400);
    expect(await stored(projectId)).toEqual({ runs: 0, deliveries: 0 });
    // Unknown trigger, wrong method.
    expect((await post(trigger.url.replace(/.{4}$/, "0000"), body, { "tessera-signature": signatureHeader(secret, body) })).status).toBe(404);
    expect((await fetch(trigger.url)).status).toBe(405);
  });

  it("the same delivery id sent concurrently starts one run; without a delivery id each POST is a run", async () => {
    const { key, projectId } = await t.createProject();
    const { secret, trigger } = await webhookTrigger(key, "racy");
    const body = JSON.stringify({ text: "race" });
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => post(trigger.url, body, { "tessera-signature": signatureHeader(secret, body), "tessera-delivery": "same" })),
    );
    const statuses = responses.map((response) => response.status).sort();
    // One starts it; the others get it back (200) or, while it is being started, 409 to retry.
    expect(statuses.filter((status) => status === 202)).toHaveLength(1);
    expect(statuses.every((status) => [200, 202, 409].includes(status))).toBe(true);
    expect((await stored(projectId)).runs).toBe(1);

    for (const text of ["one", "two"]) {
      const other = JSON.stringify({ text });
      expect((await post(trigger.url, other, { "tessera-signature": signatureHeader(secret, other) })).status).toBe(202);
    }
    expect((await stored(projectId)).runs).toBe(3);
  });

  it("without a delivery id, the same signed request replayed within the window starts no second run", async () => {
    const { key, projectId } = await t.createProject();
    const { secret, trigger } = await webhookTrigger(key, "replayed");
    const body = JSON.stringify({ text: "once" });
    const signature = signatureHeader(secret, body);
    const first = await post(trigger.url, body, { "tessera-signature": signature });
    expect(first.status).toBe(202);
    const { runId } = (await first.json()) as { runId: string };
    const replay = await post(trigger.url, body, { "tessera-signature": signature });
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({ runId, duplicate: true });
    expect((await stored(projectId)).runs).toBe(1);
  });

  it("a webhook declared in the file answers 401 until rotateTriggerSecret gives it a secret; a paused one answers 409", async () => {
    const { key, projectId } = await t.createProject();
    await t.graphql(PUBLISH, { d: workflow("filed", "on:\n  webhook: {}\n") }, key);
    const listed = await t.graphql(`{ workflow(slug: "filed") { triggers { id kind url hasSecret fromFile } } }`, {}, key);
    const [trigger] = listed.data.workflow.triggers;
    expect(trigger).toMatchObject({ kind: "WEBHOOK", hasSecret: false, fromFile: true });
    const body = JSON.stringify({ text: "from file" });
    expect((await post(trigger.url, body, { "tessera-signature": signatureHeader("whsec_guess", body) })).status).toBe(401);

    const rotated = await t.graphql(`mutation ($id: ID!) { rotateTriggerSecret(id: $id) { secret trigger { hasSecret } } }`, { id: trigger.id }, key);
    const { secret } = rotated.data.rotateTriggerSecret;
    expect((await post(trigger.url, body, { "tessera-signature": signatureHeader(secret, body) })).status).toBe(202);

    // Re-publishing keeps the same trigger (same URL and secret).
    await t.graphql(PUBLISH, { d: workflow("filed", "on:\n  webhook: {}\n").replace("required: false, default: 1", "required: false, default: 2") }, key);
    const later = JSON.stringify({ text: "after publish" });
    expect((await post(trigger.url, later, { "tessera-signature": signatureHeader(secret, later) })).status).toBe(202);

    await t.graphql(`mutation ($id: ID!) { pauseTrigger(id: $id) { paused } }`, { id: trigger.id }, key);
    const paused = JSON.stringify({ text: "while paused" });
    expect((await post(trigger.url, paused, { "tessera-signature": signatureHeader(secret, paused) })).status).toBe(409);
    expect((await stored(projectId)).runs).toBe(2);
  });
});
