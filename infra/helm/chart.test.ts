/**
 * The Helm chart, rendered by `helm template` with each ci/*-values.yaml, checked as Kubernetes would run it: every
 * container has probes (long-running ones), resources and a non-root security context; GPU pools ask for GPUs and
 * land on GPU nodes; secrets come from Secrets, never inline; KEDA scales each pool on its BullMQ wait lists;
 * every variable set is one Tessera knows. Run by `npm run lint:helm` (not `npm test`: it needs the helm binary).
 */
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { isSecretKey } from "../../services/core/secret-redaction.ts";
import { configVariables, OTHER_VARIABLES } from "../env-example.ts";

const root = path.resolve(import.meta.dirname, "..", "..");
const chart = path.join(root, "infra/helm/tessera");
const valueFiles = readdirSync(path.join(chart, "ci")).filter((file) => file.endsWith("-values.yaml"));

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } };
type Container = {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { runAsNonRoot?: boolean; allowPrivilegeEscalation?: boolean; runAsUser?: number };
  livenessProbe?: unknown;
  readinessProbe?: unknown;
};
type PodSpec = {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  nodeSelector?: Record<string, string>;
  tolerations?: Array<{ key?: string }>;
};
type Manifest = {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown> & { template?: { spec: PodSpec } };
  stringData?: Record<string, string>;
};

async function render(valuesFile: string): Promise<Manifest[]> {
  const { stdout } = await promisify(execFile)("bash", ["infra/helm/helm.sh", "template", "t", chart, "-f", path.join(chart, "ci", valuesFile)], {
    cwd: root,
    maxBuffer: 32 * 1024 * 1024,
    timeout: 60 * 60_000,
  });
  return parseAllDocuments(stdout)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

const rendered = new Map<string, Manifest[]>();
beforeAll(async () => {
  // One at a time: the first call may build helm.
  for (const file of valueFiles) rendered.set(file, await render(file));
});

const workloads = (manifests: Manifest[]) => manifests.filter((manifest) => manifest.kind === "Deployment" || manifest.kind === "Job");
const containersOf = (manifest: Manifest) => [...(manifest.spec!.template!.spec.containers ?? []), ...(manifest.spec!.template!.spec.initContainers ?? [])];
const known = new Set([...configVariables().map((variable) => variable.name), ...OTHER_VARIABLES.map((variable) => variable.name)]);

describe.each(valueFiles)("the chart with ci/%s", (valuesFile) => {
  const manifests = () => rendered.get(valuesFile)!;

  it("has the gateway, a worker pool, the migration hook and their disruption budgets", () => {
    const kinds = manifests().map((manifest) => `${manifest.kind}/${manifest.metadata.name}`);
    expect(kinds).toContain("Deployment/t-tessera-gateway");
    expect(kinds).toContain("Service/t-tessera-gateway");
    expect(kinds).toContain("Deployment/t-tessera-worker-ingest");
    expect(kinds).toContain("PodDisruptionBudget/t-tessera-gateway");
    expect(kinds).toContain("PodDisruptionBudget/t-tessera-worker-ingest");
    const migrate = manifests().find((manifest) => manifest.kind === "Job")!;
    expect(migrate.metadata.annotations?.["helm.sh/hook"]).toBe("pre-install,pre-upgrade");
    expect(containersOf(migrate)[0]!.image).not.toMatch(/gpu/);
  });

  it("gives every long-running container liveness and readiness probes", () => {
    for (const manifest of manifests().filter((manifest) => manifest.kind === "Deployment")) {
      for (const container of containersOf(manifest)) {
        expect(container.livenessProbe, `${manifest.metadata.name}/${container.name}`).toBeDefined();
        expect(container.readinessProbe, `${manifest.metadata.name}/${container.name}`).toBeDefined();
      }
    }
  });

  it("gives every container resources and a non-root security context", () => {
    expect(workloads(manifests()).length).toBeGreaterThanOrEqual(3);
    for (const manifest of workloads(manifests())) {
      const pod = manifest.spec!.template!.spec;
      for (const container of containersOf(manifest)) {
        const where = `${manifest.metadata.name}/${container.name}`;
        expect(container.resources?.requests?.memory, where).toBeDefined();
        expect(container.resources?.limits?.memory, where).toBeDefined();
        expect(container.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, where).toBe(true);
        expect(container.securityContext?.runAsUser ?? pod.securityContext?.runAsUser, where).toBeGreaterThan(0);
        expect(container.securityContext?.allowPrivilegeEscalation, where).toBe(false);
      }
    }
  });

  it("takes every secret from a Secret, never inline, and sets only variables Tessera knows", () => {
    for (const manifest of workloads(manifests())) {
      for (const container of containersOf(manifest)) {
        for (const variable of container.env ?? []) {
          const where = `${manifest.metadata.name}/${container.name} ${variable.name}`;
          expect(known.has(variable.name), where).toBe(true);
          if (isSecretKey(variable.name) || /^(DATABASE_URL|REDIS_URL)$/.test(variable.name) || /_(KEY|SECRET|TOKEN)$/.test(variable.name)) {
            expect(variable.value, where).toBeUndefined();
            expect(variable.valueFrom?.secretKeyRef?.key, where).toBe(variable.name);
          }
        }
        const names = (container.env ?? []).map((variable) => variable.name);
        expect(names).toEqual(expect.arrayContaining(["DATABASE_URL", "REDIS_URL"]));
        expect(new Set(names).size).toBe(names.length);
      }
    }
  });

  it("serves every worker's probes on WORKER_HTTP_PORT, the port its probes ask", () => {
    for (const manifest of manifests().filter((manifest) => manifest.kind === "Deployment" && manifest.metadata.name.includes("-worker-"))) {
      const [container] = containersOf(manifest);
      const port = container!.env!.find((variable) => variable.name === "WORKER_HTTP_PORT")?.value;
      expect(port).toBe("4001");
      expect(JSON.stringify(container!.readinessProbe)).toContain('"port":"probes"');
    }
  });

  it("hands each pool's preload to its worker as --preload, and readies a worker on /ready, which waits for those models", () => {
    const pools = manifests().filter((manifest) => manifest.kind === "Deployment" && manifest.metadata.name.includes("-worker-"));
    for (const manifest of pools) {
      const [container] = containersOf(manifest);
      expect(JSON.stringify(container!.readinessProbe), manifest.metadata.name).toContain('"path":"/ready"');
      const preload = container!.args!.includes("--preload") ? container!.args![container!.args!.indexOf("--preload") + 1] : undefined;
      // A GPU pool loads its models before it is ready; the default CPU pool loads them on first use, as before.
      expect(preload, manifest.metadata.name).toBe(container!.args!.includes("cuda") ? "served" : undefined);
    }
  });

  it("gives each GPU pool GPUs, GPU nodes and the models queue; every other workload calls its models there", () => {
    const gpuPools = manifests().filter(
      (manifest) => manifest.kind === "Deployment" && containersOf(manifest).some((container) => container.args?.includes("cuda")),
    );
    for (const manifest of gpuPools) {
      const pod = manifest.spec!.template!.spec;
      const [container] = pod.containers;
      expect(container!.resources?.limits?.["nvidia.com/gpu"]).toBeDefined();
      expect(container!.resources?.requests?.["nvidia.com/gpu"]).toBeDefined();
      expect(Object.keys(pod.nodeSelector ?? {}).length).toBeGreaterThan(0);
      expect(pod.tolerations?.some((toleration) => toleration.key === "nvidia.com/gpu")).toBe(true);
      expect(container!.args!.slice(container!.args!.indexOf("--queues"), container!.args!.indexOf("--queues") + 2)).toEqual(["--queues", "models"]);
      const served = container!.args![container!.args!.indexOf("--models") + 1];
      for (const other of workloads(manifests()).filter((workload) => workload !== manifest && workload.kind === "Deployment")) {
        expect(containersOf(other)[0]!.env!.find((variable) => variable.name === "REMOTE_MODELS")?.value, other.metadata.name).toBe(served);
      }
    }
    // No GPU requests anywhere else.
    for (const manifest of workloads(manifests()).filter((workload) => !gpuPools.includes(workload))) {
      for (const container of containersOf(manifest)) expect(container.resources?.limits?.["nvidia.com/gpu"]).toBeUndefined();
    }
    if (valuesFile === "gpu-values.yaml") expect(gpuPools).toHaveLength(1);
  });

  it("scales each pool with KEDA on BullMQ's wait lists, when KEDA is on", () => {
    const scaled = manifests().filter((manifest) => manifest.kind === "ScaledObject");
    if (valuesFile !== "gpu-values.yaml") return expect(scaled).toEqual([]);
    const pools = manifests().filter((manifest) => manifest.kind === "Deployment" && manifest.metadata.name.includes("-worker-"));
    expect(scaled.map((object) => (object.spec!.scaleTargetRef as { name: string }).name).sort()).toEqual(pools.map((pool) => pool.metadata.name).sort());
    for (const object of scaled) {
      const triggers = object.spec!.triggers as Array<{ type: string; metadata: Record<string, string> }>;
      expect(triggers.length).toBeGreaterThan(0);
      for (const trigger of triggers) {
        expect(trigger.type).toBe("redis");
        // BullMQ keeps a queue's waiting jobs in the list <prefix>:<queue>:wait.
        expect(trigger.metadata.listName).toMatch(/^tessera:[a-z-]+:wait$/);
        expect(Number(trigger.metadata.listLength)).toBeGreaterThan(0);
      }
    }
    // A KEDA-scaled Deployment leaves its replica count to KEDA.
    for (const pool of pools) expect(pool.spec!.replicas).toBeUndefined();
  });
});
