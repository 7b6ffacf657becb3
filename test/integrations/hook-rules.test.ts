/**
 * The integration rules as tables, without Redis: which judgement makes which Flagger hook succeed, how Flagger's
 * payload and Argo's query name the pair, and what is refused.
 */
import { describe, expect, it } from 'vitest';
import type { Phase } from '../../src/core/controller.ts';
import type { Outcome } from '../../src/core/verdict.ts';
import { pairFromQuery } from '../../src/integrations/argo-analysis.ts';
import { explanation, hookSucceeds, pairOf, parsePayload } from '../../src/integrations/flagger-webhooks.ts';
import type { Judgement } from '../../src/integrations/judgement.ts';

const figures = (version: string) => ({
  version,
  requests: 0,
  errors: 0,
  errorRatio: 0,
  p50Ms: 0,
  p95Ms: 0,
  p99Ms: 0,
  requestsPerSecond: 0,
  pods: 0,
});
const judgement = (verdict: Outcome, state: Phase | null, source?: Judgement['source'], judged: Outcome = verdict): Judgement => ({
  verdict,
  judged,
  judgedReason: 'judged why',
  state,
  controlled: state !== null,
  source: source ?? (state === null ? 'on_demand' : 'lease_holder'),
  reason: 'why',
  pair: { baseline: 'app-primary', canary: 'app' },
  atMs: 0,
  baseline: figures('app-primary'),
  canary: figures('app'),
  checks: [],
  holder: null,
  latch: null,
  advisory: true,
});

describe('Flagger hook rules', () => {
  it.each<[Outcome, Phase | null, Judgement['source'] | undefined, boolean, boolean, boolean]>([
    // verdict, state, source (default: lease_holder, or on_demand without a state),
    // then: confirm-traffic-increase and -promotion, confirm-rollout, rollback
    ['pass', 'healthy', undefined, true, true, false],
    ['warn', 'healthy', undefined, true, true, false],
    ['inconclusive', 'healthy', undefined, false, true, false],
    ['inconclusive', 'breaching', undefined, false, true, false],
    ['fail', 'breaching', undefined, false, true, false],
    ['fail', 'rolled_back', undefined, false, true, true],
    ['pass', null, undefined, true, true, false],
    ['warn', null, undefined, true, true, false],
    ['inconclusive', null, undefined, false, true, false],
    ['fail', null, undefined, false, true, true],
    // Redis unreachable: the verdict policy.noData.redisUnreachable gives; the rollout starts only on pass.
    ['inconclusive', null, 'redis_unreachable', false, false, false],
    ['fail', null, 'redis_unreachable', false, false, true],
    ['pass', null, 'redis_unreachable', true, true, false],
  ])('%s in state %s from %s: confirm %s, confirm-rollout %s, rollback %s', (verdict, state, source, confirm, rollout, rollback) => {
    const j = judgement(verdict, state, source);
    for (const hook of ['confirm-traffic-increase', 'confirm-promotion'] as const) expect(hookSucceeds(hook, j)).toBe(confirm);
    expect(hookSucceeds('confirm-rollout', j)).toBe(rollout);
    expect(hookSucceeds('rollback', j)).toBe(rollback);
  });

  it('the configured pair judged on demand (no fresh record): its fail is not the holder\u2019s decision, no rollback', () => {
    const j = { ...judgement('fail', null), controlled: true };
    expect(hookSucceeds('rollback', j)).toBe(false);
    expect(hookSucceeds('confirm-promotion', j)).toBe(false);
    // Redis unreachable under policy.noData.redisUnreachable rollback: nobody can read a latch; the policy decides.
    expect(hookSucceeds('rollback', { ...judgement('fail', null, 'redis_unreachable'), controlled: true })).toBe(true);
  });

  it.each<[Outcome, boolean, boolean]>([
    // the judge's own outcome under a previous revision's latch, then: confirm-traffic-increase, rollback
    ['pass', true, false],
    ['inconclusive', false, false],
    ['fail', false, false],
  ])('a previous revision\u2019s latch does not apply: judged %s, confirm %s, rollback %s', (judged, confirm, rollback) => {
    const j = judgement('fail', 'rolled_back', 'lease_holder', judged);
    expect(hookSucceeds('confirm-traffic-increase', j, false)).toBe(confirm);
    expect(hookSucceeds('rollback', j, false)).toBe(rollback);
    expect(hookSucceeds('rollback', j, true)).toBe(true);
    expect(explanation('rollback', j, 'rev-a')).toBe(
      `canary-gate: no rollback: app vs app-primary is ${judged} (lease_holder, rolled_back): the latch is revision rev-a's, not this one's; judged: judged why`,
    );
  });

  it('explains a refusal with both versions, the verdict, where it came from and why', () => {
    expect(explanation('confirm-promotion', judgement('inconclusive', 'healthy'))).toBe(
      'canary-gate: confirm-promotion withheld: app vs app-primary is inconclusive (lease_holder, healthy): why',
    );
    expect(explanation('rollback', judgement('pass', null))).toBe('canary-gate: no rollback: app vs app-primary is pass (on_demand): why');
  });

  it('reads Flagger\u2019s payload and names the pair <name>-primary / <name>, metadata overriding', () => {
    const p = parsePayload('{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b"}');
    expect(p).toEqual({ name: 'podinfo', namespace: 'test', phase: 'Progressing', checksum: '85d557f47b', metadata: {} });
    expect(pairOf(p as never)).toEqual({ baseline: 'podinfo-primary', canary: 'podinfo' });
    const q = parsePayload('{"name":"podinfo","metadata":{"baseline":"v1","canary":"v2"}}');
    expect(pairOf(q as never)).toEqual({ baseline: 'v1', canary: 'v2' });
  });

  it.each([
    ['not json', /JSON payload Flagger sends/],
    ['[]', /JSON object/],
    ['{"namespace":"test"}', /name \(the Canary name\)/],
    ['{"name":"a","checksum":5}', /checksum must be a string/],
    ['{"name":"a","metadata":{"n":1}}', /metadata.n must be a string/],
  ])('refuses the payload %s', (text, why) => {
    expect(parsePayload(text)).toMatch(why);
  });
});

describe('Argo query rules', () => {
  const configured = { baseline: 'v1', canary: 'v2' };
  it.each<[string, ReturnType<typeof pairFromQuery> | RegExp]>([
    ['', configured],
    ['service=shop', configured],
    ['baseline=6d4f8b9c7&canary=5b8c9d7f6', { baseline: '6d4f8b9c7', canary: '5b8c9d7f6' }],
    ['service=other', /not this sidecar's/],
    ['canary=5b8c9d7f6', /both baseline and canary/],
    ['baseline=a%2Fb&canary=c', /baseline must be a version name/],
    ['baseline=x&canary=x', /nothing to compare/],
  ])('?%s', (query, expected) => {
    const pair = pairFromQuery(new URLSearchParams(query), 'shop', configured);
    if (expected instanceof RegExp) expect(pair).toMatch(expected);
    else expect(pair).toEqual(expected);
  });
});
