/**
 * `GET /v1/analysis?service=&baseline=&canary=`: the endpoint of an Argo Rollouts `web` metric provider
 * (README, "Argo Rollouts"; deploy/argo-rollouts/analysis-template.yaml).
 *
 * What Argo Rollouts does with the answer (argoproj/argo-rollouts, metricproviders/webmetric/webmetric.go and
 * utils/evaluate/evaluate.go, read at 9f8d111d):
 * - any status outside 200..299, a timeout (`timeoutSeconds`, default 10 s) or a body that is not JSON matched by
 *   `jsonPath` is a measurement *Error*; `consecutiveErrorLimit` errors in a row (default 4) fail the metric and abort
 *   the rollout. So this endpoint answers 200 for every judgement, Redis unreachable included (the verdict
 *   policy.noData.redisUnreachable gives), and 400 only for a request no judgement can answer (a template mistake).
 * - the body is decoded as JSON and `jsonPath` (default `{$}`: the whole body) becomes `result`; `successCondition`
 *   and `failureCondition` are expr-lang expressions over it. With both set, a measurement that matches neither is
 *   *Inconclusive*, which pauses the rollout once `inconclusiveLimit` is exceeded: the shipped template maps pass and
 *   warn to success, fail to failure, and inconclusive to neither.
 *
 * Query: `baseline` and `canary` name the pair (both or neither; neither: the configured versions); `service`, when
 * given, must be this sidecar's. Body (JSON):
 *   { verdict, state, source, reason, service, atMs, at, samples: {baseline, canary},
 *     baseline: {version, requests, errors, errorRatio, p50Ms, p95Ms, p99Ms, requestsPerSecond, pods}, canary: {...},
 *     checks: [{name, outcome, observed, threshold, unit, reason}], holder, advisory }
 */
import type { AdminReply, AdminRoute } from '../metrics/admin-server.ts';
import { checkRows, versionNameProblem, type Judgement, type VersionPair } from './judgement.ts';

/** The endpoint's path on the admin port. */
export const ANALYSIS_PATH = '/v1/analysis';

/** The JSON body of a 200 answer (see the module). */
export function analysisBody(service: string, j: Judgement): Record<string, unknown> {
  return {
    verdict: j.verdict,
    state: j.state,
    source: j.source,
    reason: j.reason,
    service,
    atMs: j.atMs,
    at: new Date(j.atMs).toISOString(),
    samples: { baseline: j.baseline.requests, canary: j.canary.requests },
    baseline: j.baseline,
    canary: j.canary,
    checks: checkRows(j.checks),
    holder: j.holder,
    advisory: j.advisory,
  };
}

/** Reads the pair from the query. @returns the pair, or the reason it cannot be answered (400) */
export function pairFromQuery(query: URLSearchParams, service: string, configured: VersionPair): VersionPair | string {
  const asked = query.get('service');
  if (asked !== null && asked !== service) return `service ${JSON.stringify(asked.slice(0, 80))} is not this sidecar's (${service})`;
  const baseline = query.get('baseline');
  const canary = query.get('canary');
  if (baseline === null && canary === null) return configured;
  if (baseline === null || canary === null) return 'give both baseline and canary, or neither (the configured versions)';
  const problem = versionNameProblem('baseline', baseline) ?? versionNameProblem('canary', canary);
  if (problem !== null) return problem;
  if (baseline === canary) return `baseline and canary are both ${baseline}: nothing to compare (the rollout has no canary yet)`;
  return { baseline, canary };
}

/**
 * The route. Unauthenticated, like /status: it reads and judges, it changes nothing.
 * @param judge judges a pair (judgePair bound to this sidecar's sources); never rejects
 */
export function analysisRoute(service: string, configured: VersionPair, judge: (pair: VersionPair) => Promise<Judgement>): AdminRoute {
  return {
    method: 'GET',
    path: ANALYSIS_PATH,
    auth: false,
    async handle(request): Promise<AdminReply> {
      const pair = pairFromQuery(request.query, service, configured);
      if (typeof pair === 'string') return { status: 400, body: { error: pair } };
      return { status: 200, body: analysisBody(service, await judge(pair)) };
    },
  };
}
