/**
 * The Kubernetes manifests, validated against the Kubernetes JSON schemas (kubernetes-models), and checked for what
 * running canary-gate as a sidecar needs, and for what keeps the flag closed (issue 15): every container locked down
 * (non-root by number, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root), Redis with
 * the README's ACL user and a password from a Secret, NetworkPolicies that let only the sidecars reach Redis and only
 * Prometheus reach the admin port. No cluster here: kustomize overlays are checked for the files they name.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { manualDecision } from '../../src/core/controller.ts';
import { createHistogram, encodeHistogram, recordLatency } from '../../src/core/histogram.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { freePort } from '../../src/demo/find-redis.ts';
import { spawn } from 'node:child_process';
import { FleetReader } from '../../src/fleet/fleet-reader.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { RedisSlotStore } from '../../src/fleet/redis-slot-store.ts';
import { RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { tmpdir } from 'node:os';

const ROOT = join(import.meta.dirname, '../../deploy/kubernetes');
const MODELS: Record<string, new (data: never) => { validate(): void }> = { Deployment, Service, ConfigMap, NetworkPolicy };

interface Doc {
  file: string;
  data: Record<string, any>;
}
const docs: Doc[] = readdirSync(ROOT, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('kustomization.yaml'))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(join(ROOT, file), 'utf8')).map((d) => ({ file, data: d.toJS() as Record<string, any> })),
  );
const deployments = (version: string) => docs.filter((d) => d.data.kind === 'Deployment' && d.data.metadata.labels?.version === version);

describe('Kubernetes manifests', () => {
  it.each(docs.map((d) => [`${d.file} ${d.data.kind}/${d.data.metadata?.name}`, d] as const))(
    '%s is valid against its schema',
    (_name, doc) => {
      const Model = MODELS[doc.data.kind];
      expect(Model, `no schema model for kind ${doc.data.kind}`).toBeDefined();
      expect(() => new Model!(doc.data as never).validate()).not.toThrow();
    },
  );

  it('the validator refuses a broken manifest (so the check above can fail)', () => {
    const broken = structuredClone(deployments('v2')[0]!.data);
    broken.spec.template.spec.initContainers[0].ports[0].containerPort = 'eighty';
    expect(() => new Deployment(broken as never).validate()).toThrow();
  });

  it.each(['v1', 'v2'])('%s runs canary-gate as a native sidecar that Prometheus and the probes can reach', (version) => {
    const [deployment] = deployments(version);
    expect(deployment).toBeDefined();
    const pod = deployment!.data.spec.template;
    const sidecar = pod.spec.initContainers.find((c: { name: string }) => c.name === 'canary-gate');
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'admin' });
    expect(sidecar.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'admin' });
    expect(sidecar.resources.requests).toBeDefined();
    expect(sidecar.resources.limits).toBeDefined();
    const env = Object.fromEntries(sidecar.env.map((e: { name: string }) => [e.name, e]));
    expect(env.POD_NAME.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.POD_VERSION.valueFrom.fieldRef.fieldPath).toBe("metadata.labels['version']");
    expect(pod.metadata.labels.version).toBe(version);
    expect(pod.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090' });
    const ports = Object.fromEntries(sidecar.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
    expect(ports).toEqual({ proxy: 8080, admin: 9090 });
  });

  it('points the Service at the sidecar proxy port of both versions', () => {
    const service = docs.find((d) => d.data.kind === 'Service' && d.data.metadata.name === 'sample-api')!.data;
    expect(service.spec.ports[0].targetPort).toBe('proxy');
    expect(service.spec.selector).toEqual({ app: 'sample-api' });
    for (const v of ['v1', 'v2']) expect(deployments(v)[0]!.data.spec.template.metadata.labels.app).toBe('sample-api');
  });

  it('ships a config that canary-gate accepts, with the ports the manifests use', () => {
    const configMap = docs.find((d) => d.data.kind === 'ConfigMap')!.data;
    const dir = mkdtempSync(join(tmpdir(), 'cg-k8s-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, configMap.data['config.yaml']);
      const config = loadConfig({
        file,
        env: { POD_NAME: 'sample-api-v2-abc', POD_VERSION: 'v2', REDIS_URL: 'redis://canary-gate-redis:6379' },
      });
      expect(config.proxy.port).toBe(8080);
      expect(config.admin).toEqual({ host: '0.0.0.0', port: 9090 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has kustomize overlays for baseline and canary whose resources exist', () => {
    for (const overlay of ['base', 'baseline', 'canary']) {
      const file = join(ROOT, overlay, 'kustomization.yaml');
      const k = parse(readFileSync(file, 'utf8')) as { kind: string; resources: string[] };
      expect(k.kind).toBe('Kustomization');
      for (const r of k.resources) expect(existsSync(join(dirname(file), r)), `${overlay}: ${r}`).toBe(true);
    }
  });
});

/** What a container's securityContext lacks of the locked-down profile (empty: nothing). */
function securityProblems(container: Record<string, any>): string[] {
  const c = container.securityContext ?? {};
  const problems: string[] = [];
  if (c.runAsNonRoot !== true) problems.push('runAsNonRoot is not true');
  if (!Number.isInteger(c.runAsUser) || c.runAsUser <= 0) problems.push('runAsUser is not a non-zero number');
  if (c.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation is not false');
  if (!(c.capabilities?.drop ?? []).includes('ALL')) problems.push('capabilities do not drop ALL');
  if (c.seccompProfile?.type !== 'RuntimeDefault') problems.push('seccompProfile is not RuntimeDefault');
  if (c.readOnlyRootFilesystem !== true) problems.push('readOnlyRootFilesystem is not true');
  return problems;
}

const containersOf = (d: Doc): Array<Record<string, any>> => [
  ...(d.data.spec.template.spec.initContainers ?? []),
  ...d.data.spec.template.spec.containers,
];
const allDeployments = docs.filter((d) => d.data.kind === 'Deployment');

/** The README's ACL line for canary-gate, as tokens after the user name. */
function readmeAcl(): string[] {
  const readme = readFileSync(join(ROOT, '../../README.md'), 'utf8');
  const at = readme.indexOf('ACL SETUSER canary-gate ');
  expect(at).toBeGreaterThan(-1);
  const block = readme.slice(at, readme.indexOf('```', at));
  return block.replace('ACL SETUSER canary-gate ', '').split(/\s+/).filter(Boolean);
}

describe('Kubernetes manifests: safe defaults', () => {
  it.each(allDeployments.flatMap((d) => containersOf(d).map((c) => [`${d.file} ${c.name}`, c] as const)))(
    '%s runs non-root by number, without privilege escalation, capabilities or a writable root, under RuntimeDefault seccomp',
    (_name, container) => {
      expect(securityProblems(container)).toEqual([]);
    },
  );

  it('the check above fails a container that misses any one of them', () => {
    const sidecar = structuredClone(containersOf(deployments('v2')[0]!)[0]!);
    for (const edit of [
      (c: any) => delete c.securityContext.runAsUser,
      (c: any) => (c.securityContext.runAsUser = 'node'),
      (c: any) => (c.securityContext.allowPrivilegeEscalation = true),
      (c: any) => (c.securityContext.capabilities.drop = ['NET_RAW']),
      (c: any) => delete c.securityContext.seccompProfile,
      (c: any) => (c.securityContext.readOnlyRootFilesystem = false),
      (c: any) => delete c.securityContext.runAsNonRoot,
    ]) {
      const broken = structuredClone(sidecar);
      edit(broken);
      expect(securityProblems(broken)).toHaveLength(1);
    }
  });

  it("runs Redis with the default user off and the README's ACL user, its password from a Secret", () => {
    const redis = allDeployments.find((d) => d.data.metadata.name === 'canary-gate-redis')!;
    const container = containersOf(redis)[0]!;
    const args: string[] = container.args;
    const users = args.flatMap((a, i) => (a === '--user' ? [i] : []));
    expect(users).toHaveLength(2);
    expect(args.slice(users[0]! + 1, users[1])).toEqual(['default', 'off']);
    const rule = args.slice(users[1]! + 1);
    const end = rule.findIndex((a) => a.startsWith('--'));
    const user = end === -1 ? rule : rule.slice(0, end);
    expect(user[0]).toBe('canary-gate');
    expect(user.slice(1)).toEqual(readmeAcl().map((t) => (t === '>PASSWORD' ? '>$(REDIS_PASSWORD)' : t)));
    const env = Object.fromEntries(container.env.map((e: { name: string }) => [e.name, e]));
    expect(env.REDIS_PASSWORD.valueFrom.secretKeyRef).toMatchObject({ name: 'canary-gate-redis', key: 'password' });
    expect(JSON.stringify(redis.data)).not.toMatch(/requirepass|nopass/);
  });

  it("gives the ACL user the ConfigMap's key prefix and flag key, and the sidecars its name and password", () => {
    const configMap = docs.find((d) => d.data.kind === 'ConfigMap')!.data;
    const config = parse(configMap.data['config.yaml']) as { flag: { key: string }; redis?: { keyPrefix?: string } };
    const acl = readmeAcl();
    const prefix = config.redis?.keyPrefix ?? 'canary-gate';
    expect(acl).toContain(`~${prefix}:*`);
    expect(acl).toContain(`~${config.flag.key}`);
    expect(acl).toContain(`&${prefix}:*`);
    for (const version of ['v1', 'v2']) {
      const sidecar = containersOf(deployments(version)[0]!).find((c) => c.name === 'canary-gate')!;
      const names = sidecar.env.map((e: { name: string }) => e.name);
      const env = Object.fromEntries(sidecar.env.map((e: { name: string }) => [e.name, e]));
      expect(env.REDIS_PASSWORD.valueFrom.secretKeyRef).toMatchObject({ name: 'canary-gate-redis', key: 'password' });
      expect(env.REDIS_URL.value).toBe('redis://canary-gate:$(REDIS_PASSWORD)@canary-gate-redis:6379');
      // Kubernetes expands $(VAR) only from variables defined earlier in the list.
      expect(names.indexOf('REDIS_PASSWORD')).toBeLessThan(names.indexOf('REDIS_URL'));
    }
  });

  it("starts a real redis-server with the manifest's arguments, on which the sidecar's ACL user publishes, reads, leases and rolls back", async () => {
    const redisDeployment = allDeployments.find((d) => d.data.metadata.name === 'canary-gate-redis')!;
    const password = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const args = (containersOf(redisDeployment)[0]!.args as string[]).map((a) => a.replace('$(REDIS_PASSWORD)', password));
    // startRedisServer's readiness PING needs the default user, which these arguments turn off: start it here.
    const port = await freePort();
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...args], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const url = `redis://127.0.0.1:${port}`;
    const anonymous = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    const gate = new Redis(url.replace('redis://', `redis://canary-gate:${password}@`), { retryStrategy: () => 50 });
    for (const c of [anonymous, gate]) c.on('error', () => undefined); // refused while it starts; NOAUTH below
    try {
      await gate.ping();
      await anonymous.connect().catch(() => undefined);
      await expect(anonymous.get('feature:{sample-api}:v2_traffic_percentage')).rejects.toThrow(/NOAUTH/);
      const keys = serviceKeys('canary-gate', 'sample-api');
      const options = { flagKey: 'feature:{sample-api}:v2_traffic_percentage', rollbackValue: '0', auditMaxLen: 100 };
      const h = createHistogram();
      recordLatency(h, 1000);
      const encoded = encodeHistogram(h);
      h.destroy();
      await new RedisSlotStore(gate, keys, 4, 1000).publish('v2', 'pod-a', { slotIndex: 9, slotMs: 1000, requests: 1, errors: 0, encoded });
      const reader = new FleetReader(gate, keys, { baseline: 'v1', canary: 'v2' }, 1000, 4);
      expect((await reader.read(9)).canary.requests).toBe(1);
      reader.destroy();
      const lease = new RedisLease(gate, keys);
      const token = await lease.acquire('pod-a/1', 3000);
      expect(token).toBeGreaterThan(0);
      expect(await lease.holder()).toBe('pod-a/1');
      const flags = new RedisFlagStore(gate, keys, options);
      const decision = manualDecision({ reason: 'manifest test', by: 'test', atMs: 1_700_000_000_000 });
      expect(await flags.rollback(decision, token)).toBe('written');
      expect(await flags.latch()).toEqual(decision);
      expect(await flags.flagPercent()).toBe(0);
      await flags.reset('test', 'done', '10', 1_700_000_001_000);
      expect(await flags.lastReset()).toMatchObject({ actor: 'test' });
      await expect(gate.get('someone-else:key')).rejects.toThrow(/NOPERM/);
    } finally {
      anonymous.disconnect();
      gate.disconnect();
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('lets only the sidecars reach Redis, and only Prometheus reach the admin port', () => {
    const policies = docs.filter((d) => d.data.kind === 'NetworkPolicy').map((d) => d.data);
    const selecting = (app: string) => policies.filter((p) => p.spec.podSelector.matchLabels?.app === app);
    const [redis] = selecting('canary-gate-redis');
    expect(redis!.spec.policyTypes).toContain('Ingress');
    expect(redis!.spec.ingress).toEqual([
      { from: [{ podSelector: { matchLabels: { app: 'sample-api' } } }], ports: [{ protocol: 'TCP', port: 6379 }] },
    ]);
    const [api] = selecting('sample-api');
    expect(api!.spec.policyTypes).toContain('Ingress');
    const rules: Array<{ from?: unknown[]; ports: Array<{ port: number }> }> = api!.spec.ingress;
    const open = rules.filter((r) => r.from === undefined).flatMap((r) => r.ports.map((p) => p.port));
    expect(open).toEqual([8080]);
    const admin = rules.filter((r) => r.ports.some((p) => p.port === 9090));
    expect(admin).toHaveLength(1);
    expect(JSON.stringify(admin[0]!.from)).toContain('prometheus');
    const kustomization = parse(readFileSync(join(ROOT, 'base/kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect(kustomization.resources).toContain('network-policies.yaml');
  });
});
