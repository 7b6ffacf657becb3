/**
 * Contract: Argo Rollouts' `web` metric provider against sidecars on a real Redis. Each measurement replays what Argo
 * does with the shipped AnalysisTemplate (test/integrations/controllers.ts: the URL after argument substitution, Go's
 * headers, the 2xx rule, jsonPath, EvaluateResult over both conditions), with the pair named by pod-template hashes as
 * a Rollout passes them, and both pods (stable and canary) are asked: they must agree.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { eventually, uniqueService } from '../helpers/redis.ts';
import { argoMeasure, type ArgoPhase, shippedTemplate } from './controllers.ts';
import { analysis, load, privateRedis, sidecarPair, type SidecarPair } from './fleet.ts';

const STABLE = '6d4f8b9c7';
const LATEST = '5b8c9d7f6';
/** The shipped Argo config's mode: versions named by the request, advisory, no lease-holder evaluation. */
const ARGO_ENV = { CANARY_GATE_VERSIONS_NAMED_BY_REQUEST: 'true', CANARY_GATE_EVALUATION_ENABLED: 'false' };
/** Errors: 20 % on the canary warns (above 5 %) and fails nothing (absolute 50 %, relative never). */
const WARN_ENV = {
  CANARY_GATE_POLICY_ERRORS_WARN_RATIO: '0.05',
  CANARY_GATE_POLICY_ERRORS_ABSOLUTE_RATIO: '0.5',
  CANARY_GATE_POLICY_ERRORS_RELATIVE_RATIO: '1000',
};

const { metric } = shippedTemplate();
const argsFor = (pair: SidecarPair) => ({
  service: pair.service,
  'stable-hash': STABLE,
  'canary-hash': LATEST,
  'admin-url': 'http://canary-gate-admin:9090',
});

/** Measures on both pods until `ready` holds for both answers of the same window; returns them. */
async function measureBoth(pair: SidecarPair, ready: (result: any) => boolean) {
  return eventually(
    async () => {
      const [a, b] = await Promise.all(pair.pods.map((p) => argoMeasure(metric, argsFor(pair), p.admin)));
      return ready(a!.result) && ready(b!.result) && a!.result.atMs === b!.result.atMs ? ([a!, b!] as const) : undefined;
    },
    8000,
    'both pods answering the same window',
  );
}

describe('GET /v1/analysis as Argo Rollouts calls it', () => {
  it.each<[string, string, ArgoPhase, { canaryErrorEvery?: number; requests: [number, number]; env?: Record<string, string> }]>([
    ['a healthy canary', 'pass', 'Successful', { requests: [40, 40] }],
    [
      'a canary with 20 % errors under a 5 % warning level',
      'warn',
      'Successful',
      { canaryErrorEvery: 5, requests: [40, 40], env: WARN_ENV },
    ],
    ['a canary answering 503', 'fail', 'Failed', { canaryErrorEvery: 1, requests: [40, 40] }],
    ['a canary with fewer requests than the minimum', 'inconclusive', 'Inconclusive', { requests: [40, 5] }],
    // The shipped config's method: the sequential statistics, replayed from the window's first slot on every request.
    [
      'a healthy canary, sequential statistics',
      'pass',
      'Successful',
      { requests: [60, 60], env: { CANARY_GATE_POLICY_STATISTICS_ENABLED: 'true' } },
    ],
    [
      'a canary answering 503, sequential statistics',
      'fail',
      'Failed',
      { canaryErrorEvery: 1, requests: [60, 60], env: { CANARY_GATE_POLICY_STATISTICS_ENABLED: 'true' } },
    ],
  ])('%s: verdict %s, Argo phase %s, the same from both pods', async (_name, verdict, phase, scenario) => {
    const pair = await sidecarPair(uniqueService('argo'), {
      baseline: STABLE,
      canary: LATEST,
      canaryErrorEvery: scenario.canaryErrorEvery,
      env: { ...ARGO_ENV, ...scenario.env },
    });
    await Promise.all([load(pair.baseline, scenario.requests[0]), load(pair.canary, scenario.requests[1])]);
    const [a, b] = await measureBoth(pair, (r) => r.samples.baseline === scenario.requests[0] && r.samples.canary === scenario.requests[1]);
    expect(a.status).toBe(200);
    expect(a.result).toMatchObject({ verdict, source: 'on_demand', state: null, service: pair.service });
    expect(a.result.baseline).toMatchObject({ version: STABLE, pods: 1 });
    expect(a.result.canary).toMatchObject({ version: LATEST, pods: 1 });
    expect(a.phase).toBe(phase);
    // Every check carries its evidence in words, with both numbers where there are two.
    for (const check of a.result.checks) expect(Object.keys(check)).toEqual(['name', 'outcome', 'observed', 'threshold', 'unit', 'reason']);
    expect(b).toEqual(a);
  });

  it('no traffic at all: inconclusive with a no_data check, 200 so that Argo counts no error', async () => {
    const pair = await sidecarPair(uniqueService('argo-nodata'), { baseline: STABLE, canary: LATEST, env: ARGO_ENV });
    const [a, b] = await measureBoth(pair, () => true);
    expect(a).toMatchObject({ status: 200, phase: 'Inconclusive' });
    expect(a.result.checks).toEqual([expect.objectContaining({ name: 'no_data', outcome: 'inconclusive' })]);
    expect(a.result.reason).toMatch(/no traffic to either version/);
    expect(b).toEqual(a);
  });

  it.each([
    ['hold', 'inconclusive', 'Inconclusive'],
    ['rollback', 'fail', 'Failed'],
  ])('Redis down, policy.noData.redisUnreachable %s: 200 with verdict %s (%s), never a 5xx', async (action, verdict, phase) => {
    const redis = await privateRedis();
    const pair = await sidecarPair(uniqueService('argo-down'), {
      baseline: STABLE,
      canary: LATEST,
      redisUrl: redis.url,
      env: { ...ARGO_ENV, CANARY_GATE_POLICY_NO_DATA_REDIS_UNREACHABLE: action },
    });
    await Promise.all([load(pair.baseline, 30), load(pair.canary, 30)]);
    await measureBoth(pair, (r) => r.samples.canary === 30);
    await redis.stop();
    for (const pod of pair.pods) {
      const m = await argoMeasure(metric, argsFor(pair), pod.admin);
      expect(m).toMatchObject({ status: 200, phase });
      expect(m.result).toMatchObject({ verdict, source: 'redis_unreachable' });
      expect(m.result.reason).toMatch(new RegExp(`Redis unreachable.*${action} \\(policy.noData.redisUnreachable\\)`));
    }
  });

  it('refuses with 400 what no judgement can answer: another service, half a pair, a bad name, the same version twice', async () => {
    const pair = await sidecarPair(uniqueService('argo-bad'), { baseline: STABLE, canary: LATEST, env: ARGO_ENV });
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ service: 'someone-else', baseline: STABLE, canary: LATEST }, /not this sidecar's/],
      [{ baseline: STABLE }, /both baseline and canary/],
      [{ baseline: STABLE, canary: 'a b' }, /canary must be a version name/],
      [{ baseline: STABLE, canary: STABLE }, /nothing to compare/],
    ];
    for (const [query, error] of cases) {
      const answer = await analysis(pair.canary, query);
      expect(answer.status, JSON.stringify(query)).toBe(400);
      expect(answer.body.error).toMatch(error);
    }
    await analysis(pair.canary, { baseline: STABLE, canary: LATEST });
    // Counted, as every bad input on the wire is.
    const metrics = await (await request(`${pair.canary.admin}/metrics`)).body.text();
    expect(metrics).toMatch(/canary_gate_integration_requests_total\{[^}]*endpoint="\/v1\/analysis"[^}]*status="400"[^}]*\} 4\b/);
    expect(metrics).toMatch(/canary_gate_integration_requests_total\{[^}]*endpoint="\/v1\/analysis"[^}]*status="200"[^}]*\} 1\b/);
  });
});
