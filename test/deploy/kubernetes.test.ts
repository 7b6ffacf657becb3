/**
 * The Kubernetes manifests, validated against the Kubernetes JSON schemas (kubernetes-models), and checked for what
 * running canary-gate as a sidecar needs. No cluster here: kustomize overlays are checked for the files they name.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { parseAllDocuments, parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const ROOT = join(import.meta.dirname, '../../deploy/kubernetes');
const MODELS: Record<string, new (data: never) => { validate(): void }> = { Deployment, Service, ConfigMap };

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
