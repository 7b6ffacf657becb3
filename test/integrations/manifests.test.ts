/**
 * The worked examples of deploy/argo-rollouts and deploy/flagger, validated against the published schemas: Argo
 * Rollouts and Gateway API through @kubernetes-models, core kinds through kubernetes-models, and Flagger's Canary
 * through its own CRD's openAPIV3Schema (schemas/flagger-canary-v1beta1.json; no @kubernetes-models package exists for
 * it) with ajv, unknown fields refused as `kubectl apply --validate=strict` refuses them. Each validator is shown to
 * refuse a broken copy, and the pieces that must agree with each other (args, Services, routes, versions, ports) do.
 * No API server runs here: what a cluster would add (admission webhooks, the controllers themselves) is not checked.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnalysisTemplate, Rollout } from '@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import { Ajv } from 'ajv';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { ANALYSIS_PATH } from '../../src/integrations/argo-analysis.ts';
import { FLAGGER_HOOKS, flaggerPath } from '../../src/integrations/flagger-webhooks.ts';
import { condition, evaluateResult, manifests, PORTABLE_CONDITION, shippedTemplate } from './controllers.ts';

type Doc = { file: string; data: Record<string, any> };
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  AnalysisTemplate,
  Rollout,
  HTTPRoute,
  Deployment,
  Service,
  ConfigMap,
};

/** Adds `additionalProperties: false` wherever a CRD schema lists properties and does not preserve unknown fields. */
function strict(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strict);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema))
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, strict(s)])) : strict(v);
  if (schema.properties && !schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties === undefined)
    out.additionalProperties = false;
  return out;
}

const flaggerSchema = JSON.parse(readFileSync(join(import.meta.dirname, 'schemas/flagger-canary-v1beta1.json'), 'utf8'));
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
const validateCanary = ajv.compile(strict(flaggerSchema));
const canaryProblems = (data: unknown): string[] =>
  validateCanary(data) ? [] : (validateCanary.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);

const argo: Doc[] = manifests('argo-rollouts', [
  'analysis-template.yaml',
  'rollout.yaml',
  'services.yaml',
  'httproute.yaml',
  'configmap.yaml',
]);
const flagger: Doc[] = manifests('flagger', ['canary.yaml', 'deployment.yaml']);
const byKind = (docs: Doc[], kind: string, name?: string) =>
  docs.find((d) => d.data.kind === kind && (name === undefined || d.data.metadata.name === name))!.data;
const envOf = (container: any): Record<string, any> =>
  Object.fromEntries((container.env as Array<{ name: string }>).map((e) => [e.name, e]));

function loadShippedConfig(configMap: any, version: string) {
  const dir = mkdtempSync(join(tmpdir(), 'cg-integrations-'));
  try {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, configMap.data['config.yaml']);
    return loadConfig({ file, env: { POD_NAME: 'pod-1', POD_VERSION: version, REDIS_URL: 'redis://canary-gate-redis:6379' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('deploy/argo-rollouts', () => {
  it.each(argo.map((d) => [`${d.file} ${d.data.kind}/${d.data.metadata.name}`, d] as const))(
    '%s is valid against its schema',
    (_n, doc) => {
      const Model = MODELS[doc.data.kind];
      expect(Model, `no schema for kind ${doc.data.kind}`).toBeDefined();
      expect(() => new Model!(doc.data as never).validate()).not.toThrow();
    },
  );

  it('the schemas refuse broken copies (so the checks above can fail)', () => {
    const template = structuredClone(byKind(argo, 'AnalysisTemplate'));
    template.spec.metrics[0].provider.web.timeoutSeconds = 'five';
    expect(() => new AnalysisTemplate(template as never).validate()).toThrow();
    const rollout = structuredClone(byKind(argo, 'Rollout'));
    rollout.spec.strategy.canary.steps[0].setWeight = 'five';
    expect(() => new Rollout(rollout as never).validate()).toThrow();
    const route = structuredClone(byKind(argo, 'HTTPRoute'));
    route.spec.rules[0].backendRefs[0].weight = -1;
    expect(() => new HTTPRoute(route as never).validate()).toThrow();
  });

  it('names the pair by pod-template hashes, from the Rollout to the URL to the sidecar version', () => {
    const { template, metric } = shippedTemplate();
    const rollout = byKind(argo, 'Rollout');
    const analysis = rollout.spec.strategy.canary.analysis;
    expect(analysis.templates[0].templateName).toBe(template.metadata.name);
    const passed = Object.fromEntries(analysis.args.map((a: any) => [a.name, a]));
    expect(passed['stable-hash'].valueFrom.podTemplateHashValue).toBe('Stable');
    expect(passed['canary-hash'].valueFrom.podTemplateHashValue).toBe('Latest');
    // Every template argument without a default is passed by the Rollout.
    for (const arg of template.spec.args) if (arg.value === undefined) expect(passed[arg.name], arg.name).toBeDefined();
    const url = new URL(
      metric.provider.web.url.replace(/\{\{\s*args\.([a-z-]+)\s*\}\}/g, (_m, n: string) => (n === 'admin-url' ? 'http://h:1' : `{${n}}`)),
    );
    expect(url.pathname).toBe(ANALYSIS_PATH);
    expect(Object.fromEntries(url.searchParams)).toEqual({ service: '{service}', baseline: '{stable-hash}', canary: '{canary-hash}' });
    const sidecar = rollout.spec.template.spec.initContainers.find((c: any) => c.name === 'canary-gate');
    expect(envOf(sidecar).POD_VERSION.valueFrom.fieldRef.fieldPath).toBe("metadata.labels['rollouts-pod-template-hash']");
  });

  it('routes through the stable and canary Services the plugin weights, to the sidecar proxy port', () => {
    const rollout = byKind(argo, 'Rollout');
    const canary = rollout.spec.strategy.canary;
    const plugin = canary.trafficRouting.plugins['argoproj-labs/gatewayAPI'];
    const route = byKind(argo, 'HTTPRoute');
    expect(plugin).toMatchObject({ httpRoute: route.metadata.name, namespace: route.metadata.namespace });
    expect(route.spec.rules[0].backendRefs.map((b: any) => b.name)).toEqual([canary.stableService, canary.canaryService]);
    for (const name of [canary.stableService, canary.canaryService])
      expect(byKind(argo, 'Service', name).spec.ports[0].targetPort).toBe('proxy');
    const admin = byKind(argo, 'Service', 'canary-gate-admin');
    expect(admin.spec.selector).toEqual(rollout.spec.selector.matchLabels);
    const { template } = shippedTemplate();
    const adminUrl = new URL(template.spec.args.find((a: any) => a.name === 'admin-url').value);
    expect([adminUrl.hostname, Number(adminUrl.port)]).toEqual([admin.metadata.name, admin.spec.ports[0].port]);
  });

  it('ships a config canary-gate accepts: any pod-template hash as version, advisory, the ports the manifests use', () => {
    const config = loadShippedConfig(byKind(argo, 'ConfigMap'), '6d4f8b9c7');
    expect(config.versions.namedByRequest).toBe(true);
    expect(config.pod.version).toBe('6d4f8b9c7');
    expect(config.policy.advisory).toBe(true);
    expect(config.evaluation.enabled).toBe(false);
    expect([config.proxy.port, config.admin.port, config.admin.host]).toEqual([8080, 9090, '0.0.0.0']);
    expect(config.service).toBe(byKind(argo, 'Rollout').spec.strategy.canary.analysis.args.find((a: any) => a.name === 'service').value);
  });

  it('maps the four verdicts to Argo phases with conditions that mean the same in expr-lang and CEL', () => {
    const { metric } = shippedTemplate();
    expect(metric.successCondition).toMatch(PORTABLE_CONDITION);
    expect(metric.failureCondition).toMatch(PORTABLE_CONDITION);
    const phases = Object.fromEntries(['pass', 'warn', 'inconclusive', 'fail'].map((v) => [v, evaluateResult(metric, { verdict: v })]));
    expect(phases).toEqual({ pass: 'Successful', warn: 'Successful', inconclusive: 'Inconclusive', fail: 'Failed' });
    expect(() => condition('result.verdict in ["pass"]', { verdict: 'pass' })).toThrow(/portable subset/);
  });
});

describe('deploy/flagger', () => {
  it('the Canary is valid against Flagger\u2019s CRD schema, unknown fields refused', () => {
    expect(canaryProblems(byKind(flagger, 'Canary'))).toEqual([]);
  });

  it('the CRD schema refuses broken copies (so the check above can fail)', () => {
    const typo = structuredClone(byKind(flagger, 'Canary'));
    typo.spec.analysis.webhooks[0].timout = '5s';
    expect(canaryProblems(typo).join('\n')).toMatch(/additional properties/);
    const badType = structuredClone(byKind(flagger, 'Canary'));
    badType.spec.analysis.webhooks[0].type = 'confirm-everything';
    expect(canaryProblems(badType).join('\n')).toMatch(/allowed values/);
  });

  it.each(flagger.filter((d) => d.data.kind !== 'Canary').map((d) => [`${d.data.kind}/${d.data.metadata.name}`, d] as const))(
    '%s is valid against its schema',
    (_n, doc) => {
      expect(() => new MODELS[doc.data.kind]!(doc.data as never).validate()).not.toThrow();
    },
  );

  it('points every webhook at a canary-gate hook of the same type on the admin Service', () => {
    const canary = byKind(flagger, 'Canary');
    const admin = byKind(flagger, 'Service', 'canary-gate-admin');
    const hooks = canary.spec.analysis.webhooks as Array<{ type: string; url: string }>;
    expect(hooks.map((h) => h.type).sort()).toEqual([...FLAGGER_HOOKS].sort());
    for (const hook of hooks) {
      const url = new URL(hook.url);
      expect(url.pathname).toBe(flaggerPath(hook.type as (typeof FLAGGER_HOOKS)[number]));
      expect([url.hostname, Number(url.port)]).toEqual([`${admin.metadata.name}.${admin.metadata.namespace}`, admin.spec.ports[0].port]);
    }
  });

  it('follows Flagger\u2019s naming: <name>-primary is the baseline, <name> the canary, the version read from the app label', () => {
    const canary = byKind(flagger, 'Canary');
    const deployment = byKind(flagger, 'Deployment');
    expect(canary.spec.targetRef.name).toBe(deployment.metadata.name);
    const config = loadShippedConfig(byKind(flagger, 'ConfigMap'), 'checkout');
    expect(config.versions).toEqual({ baseline: `${canary.metadata.name}-primary`, canary: canary.metadata.name, namedByRequest: false });
    expect(config.policy.advisory).toBe(true);
    const sidecar = deployment.spec.template.spec.initContainers.find((c: any) => c.name === 'canary-gate');
    expect(envOf(sidecar).POD_VERSION.valueFrom.fieldRef.fieldPath).toBe("metadata.labels['app']");
    expect(deployment.spec.template.metadata.labels.app).toBe(config.versions.canary);
    // The admin Service selects a label Flagger leaves alone, so primary and canary pods both answer.
    const admin = byKind(flagger, 'Service', 'canary-gate-admin');
    for (const [k, v] of Object.entries(admin.spec.selector)) {
      expect(k).not.toBe('app');
      expect(deployment.spec.template.metadata.labels[k]).toBe(v);
    }
    expect(canary.spec.service.targetPort).toBe('proxy');
  });
});
