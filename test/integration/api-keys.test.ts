import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, issueApiKey, LAST_USED_WRITE_INTERVAL_MS } from "../../services/core/api-keys.ts";
import { eventually, startTestApp, type TestApp } from "../support/test-app.ts";

/*
 * API keys with scopes and an expiry (issue #19): read/write/admin enforced per operation, `keys` as a
 * connection, createKey without escalation, revokeKey, lastUsedAt written throttled. Real gateway and database.
 */
let t: TestApp;
let admin: { key: string; projectId: string };

const KEYS = `{ keys { totalCount edges { node { id name prefix scopes expiresAt lastUsedAt revokedAt current } } } }`;
const CREATE = `mutation ($name: String, $scopes: [ApiKeyScope!], $expiresAt: DateTime) {
  createKey(name: $name, scopes: $scopes, expiresAt: $expiresAt) { key apiKey { id name scopes expiresAt } }
}`;
const REVOKE = `mutation ($id: ID!) { revokeKey(id: $id) { id revokedAt } }`;

beforeAll(async () => {
  t = await startTestApp();
  admin = await t.createProject();
});
afterAll(async () => {
  await t?.close();
});

async function create(variables: Record<string, unknown>, key = admin.key) {
  const answer = await t.graphql(CREATE, variables, key);
  expect(answer.errors).toBeUndefined();
  return answer.data.createKey as { key: string; apiKey: { id: string; name: string; scopes: string[]; expiresAt: string | null } };
}

describe("scopes", () => {
  it("a READ key reads but cannot write, and a WRITE-only key cannot read: FORBIDDEN naming the scope", async () => {
    const reader = await create({ name: "reader", scopes: ["READ"] });
    expect(reader.apiKey.scopes).toEqual(["READ"]);
    expect((await t.graphql(`{ assets { totalCount } }`, {}, reader.key)).errors).toBeUndefined();
    const write = await t.graphql(`mutation { ingest(input: { text: "refused ${randomUUID()}" }) { asset { id } } }`, {}, reader.key);
    expect(write.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(write.errors?.[0]?.message).toMatch(/lacks the `write` scope/);
    expect(await t.app.db.asset.count({ where: { projectId: admin.projectId } })).toBe(0);

    const writer = await create({ name: "writer", scopes: ["WRITE"] });
    expect((await t.graphql(`mutation { ingest(input: { text: "allowed ${randomUUID()}" }) { asset { id } } }`, {}, writer.key)).errors).toBeUndefined();
    const read = await t.graphql(`{ assets { totalCount } }`, {}, writer.key);
    expect(read.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(read.errors?.[0]?.message).toMatch(/lacks the `read` scope/);
  });

  it("keys, createKey and revokeKey need ADMIN, and no key grants scopes it lacks", async () => {
    const plain = await create({ name: "plain" });
    expect(plain.apiKey.scopes).toEqual(["READ", "WRITE"]);
    for (const query of [KEYS, `mutation { createKey(name: "x") { key } }`]) {
      const answer = await t.graphql(query, {}, plain.key);
      expect(answer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(answer.errors?.[0]?.message).toMatch(/lacks the `admin` scope/);
    }
    const partialAdmin = await create({ name: "admin without read", scopes: ["WRITE", "ADMIN"] });
    const keysBefore = await t.app.db.apiKey.count({ where: { projectId: admin.projectId } });
    const escalate = await t.graphql(CREATE, { scopes: ["READ", "WRITE"] }, partialAdmin.key);
    expect(escalate.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    expect(escalate.errors?.[0]?.message).toMatch(/cannot grant scopes it lacks: READ/);
    expect(await t.app.db.apiKey.count({ where: { projectId: admin.projectId } })).toBe(keysBefore);
  });
});

describe("keys, revokeKey and expiry", () => {
  it("lists the project's keys as a connection, marks the caller's, and hides other projects'", async () => {
    const other = await t.createProject();
    const listed = await t.graphql(KEYS, {}, admin.key);
    expect(listed.errors).toBeUndefined();
    const nodes = listed.data.keys.edges.map((edge: any) => edge.node);
    expect(listed.data.keys.totalCount).toBe(nodes.length);
    expect(nodes.filter((node: any) => node.current)).toHaveLength(1);
    const otherKeys = await t.app.db.apiKey.findMany({ where: { projectId: other.projectId } });
    expect(nodes.some((node: any) => otherKeys.some((key) => key.id === node.id))).toBe(false);
  });

  it("revokes a key (it stops working at once), refuses to revoke it twice, and cannot reach another project's", async () => {
    const doomed = await create({ name: "doomed" });
    expect((await t.graphql(`{ assets { totalCount } }`, {}, doomed.key)).errors).toBeUndefined();
    const revoked = await t.graphql(REVOKE, { id: doomed.apiKey.id }, admin.key);
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data.revokeKey.revokedAt).toBeTruthy();
    expect((await t.graphql(`{ assets { totalCount } }`, {}, doomed.key)).errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect((await t.graphql(REVOKE, { id: doomed.apiKey.id }, admin.key)).errors?.[0]?.extensions?.code).toBe("CONFLICT");
    const listed = await t.graphql(`{ keys(includeRevoked: false) { edges { node { id } } } }`, {}, admin.key);
    expect(listed.data.keys.edges.some((edge: any) => edge.node.id === doomed.apiKey.id)).toBe(false);

    const other = await createApiKey(t.app.db, `other-${randomUUID()}`);
    const foreign = await t.graphql(REVOKE, { id: other.apiKey.id }, admin.key);
    expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect((await t.app.db.apiKey.findUniqueOrThrow({ where: { id: other.apiKey.id } })).revokedAt).toBeNull();
  });

  it("an expired key stops working, even while the gateway remembers it; an expiry in the past is refused", async () => {
    const past = await t.graphql(CREATE, { expiresAt: new Date(Date.now() - 1000).toISOString() }, admin.key);
    expect(past.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const expiresAt = new Date(Date.now() + 1500);
    const brief = await create({ name: "brief", expiresAt: expiresAt.toISOString() });
    expect(new Date(brief.apiKey.expiresAt!).getTime()).toBe(expiresAt.getTime());
    expect((await t.graphql(`{ assets { totalCount } }`, {}, brief.key)).errors).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt.getTime() - Date.now()) + 200));
    expect((await t.graphql(`{ assets { totalCount } }`, {}, brief.key)).errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });
});

describe("lastUsedAt", () => {
  it("is written on use, at most once per interval", async () => {
    const { key, apiKey } = await issueApiKey(t.app.db, admin.projectId, { name: "used" });
    expect(apiKey.lastUsedAt).toBeNull();
    await t.graphql(`{ assets { totalCount } }`, {}, key);
    const first = await eventually(async () => (await t.app.db.apiKey.findUniqueOrThrow({ where: { id: apiKey.id } })).lastUsedAt);
    for (let i = 0; i < 3; i++) await t.graphql(`{ assets { totalCount } }`, {}, key);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = (await t.app.db.apiKey.findUniqueOrThrow({ where: { id: apiKey.id } })).lastUsedAt;
    // Within LAST_USED_WRITE_INTERVAL_MS the row is not written again.
    expect(after!.getTime()).toBe(first.getTime());
    expect(LAST_USED_WRITE_INTERVAL_MS).toBeGreaterThanOrEqual(1000);
    const listed = await t.graphql(KEYS, {}, admin.key);
    expect(listed.data.keys.edges.find((edge: any) => edge.node.id === apiKey.id).node.lastUsedAt).toBe(first.toISOString());
  });
});
