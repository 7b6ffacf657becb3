/**
 * Contract: Flagger's webhooks against sidecars on a real Redis, in the shipped Flagger mode (versions `checkout-primary`
 * and `checkout`, advisory, the lease holder judging and publishing). Each call replays Flagger's callWebhook
 * (test/integrations/controllers.ts: the payload as Go marshals it, success read as status <= 202) on the URLs of the
 * shipped Canary, moved onto each pod's admin port; both pods must answer alike, holder or not.
 */
import { describe, expect, it } from 'vitest';
import { client, eventually, sleep, uniqueService } from '../helpers/redis.ts';
import { cleanups, TOKEN } from '../helpers/sidecar-fleet.ts';
import { flaggerCall, type FlaggerPayload, shippedWebhooks } from './controllers.ts';
import { analysis, load, privateRedis, type SidecarPair, sidecarPair, steadyLoad } from './fleet.ts';

const NAME = 'checkout';
const FLAGGER = { baseline: `${NAME}-primary`, canary: NAME };
const WARN_ENV = {
  CANARY_GATE_POLICY_ERRORS_WARN_RATIO: '0.05',
  CANARY_GATE_POLICY_ERRORS_ABSOLUTE_RATIO: '0.5',
  CANARY_GATE_POLICY_ERRORS_RELATIVE_RATIO: '1000',
};
const payload = (phase = 'Progressing', checksum = '85d557f47b', metadata?: Record<string, string>): FlaggerPayload => ({
  name: NAME,
  namespace: 'shop',
  phase,
  checksum,
  metadata,
});

/** Calls a hook of the shipped Canary on every pod. */
async function callAll(pair: SidecarPair, type: string, body: FlaggerPayload = payload()) {
  return Promise.all(pair.pods.map((p) => flaggerCall(shippedWebhooks(p.admin)[type]!.url, body)));
}

/** Waits until both pods answer /v1/analysis from the lease holder's published verdict and `ready` holds. */
async function published(pair: SidecarPair, ready: (body: any) => boolean) {
  return eventually(
    async () => {
      const answers = await Promise.all(pair.pods.map((p) => analysis(p)));
      return answers.every((a) => a.body.source === 'lease_holder' && ready(a.body)) ? answers.map((a) => a.body) : undefined;
    },
    8000,
    'the published verdict on both pods',
  );
}

describe('Flagger webhooks', () => {
  it('under load, every pod answers with the lease holder\u2019s verdict of the same window, the non-holder from Redis', async () => {
    const pair = await sidecarPair(uniqueService('flagger-load'), FLAGGER);
    const traffic = steadyLoad(pair.pods);
    const compared = { holder: 0, other: 0, hooks: 0 };
    try {
      await published(pair, (b) => b.verdict === 'pass');
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        const holder = pair.pods.find((p) => p.sidecar.status().evaluator.holding)!;
        for (const pod of pair.pods) {
          const { body } = await analysis(pod);
          const verdict = pair.holderVerdicts.get(body.atMs);
          expect(verdict, `a holder verdict for the window ending ${body.atMs}`).toBeDefined();
          expect([body.verdict, body.reason, body.samples]).toEqual([
            verdict!.outcome,
            verdict!.reason,
            { baseline: verdict!.baseline.requests, canary: verdict!.canary.requests },
          ]);
          compared[pod === holder ? 'holder' : 'other']++;
        }
        const promotion = await callAll(pair, 'confirm-promotion');
        const rollback = await callAll(pair, 'rollback');
        expect([...promotion, ...rollback].map((r) => r.ok)).toEqual([true, true, false, false]);
        compared.hooks += 4;
        await sleep(50);
      }
    } finally {
      await traffic.stop();
    }
    // The non-holder never evaluated: what it answered came from Redis.
    const other = pair.pods.find((p) => !p.sidecar.status().evaluator.holding)!;
    expect(other.sidecar.status().latestVerdict).toBeNull();
    expect(compared.holder).toBeGreaterThan(10);
    expect(compared.other).toBeGreaterThan(10);
  });

  it.each<[string, { canaryErrorEvery?: number; requests: [number, number]; env?: Record<string, string> }, boolean, RegExp]>([
    ['pass', { requests: [40, 40] }, true, /all checks pass/],
    ['warn', { canaryErrorEvery: 5, requests: [40, 40], env: WARN_ENV }, true, /canary error ratio 20.00 % <= 5.00 %/],
    ['inconclusive', { requests: [40, 5] }, false, /canary has 5 requests in the window, fewer than the minimum 20/],
  ])(
    'verdict %s: traffic increase and promotion confirmed only on pass or warn, the rollout always; no rollback',
    async (verdict, scenario, confirmed, why) => {
      const pair = await sidecarPair(uniqueService(`flagger-${verdict}`), {
        ...FLAGGER,
        canaryErrorEvery: scenario.canaryErrorEvery,
        env: scenario.env,
      });
      await Promise.all([load(pair.baseline, scenario.requests[0]), load(pair.canary, scenario.requests[1])]);
      await published(pair, (b) => b.verdict === verdict && b.samples.canary === scenario.requests[1]);
      // No canary pod runs before confirm-rollout succeeds: it refuses only when the gate cannot judge (Redis down).
      for (const a of await callAll(pair, 'confirm-rollout')) expect([a.ok, a.status]).toEqual([true, 200]);
      for (const type of ['confirm-traffic-increase', 'confirm-promotion']) {
        const answers = await callAll(pair, type);
        for (const a of answers) {
          expect(a.ok, `${type}: ${a.body}`).toBe(confirmed);
          expect(a.status).toBe(confirmed ? 200 : 403);
          if (confirmed) expect(JSON.parse(a.body)).toMatchObject({ hook: type, verdict, source: 'lease_holder' });
          else
            expect(a.body).toMatch(
              new RegExp(`${type} withheld: checkout vs checkout-primary is ${verdict} \\(lease_holder, healthy\\): .*${why.source}`),
            );
        }
      }
      for (const a of await callAll(pair, 'rollback')) expect([a.ok, a.status]).toEqual([false, 403]);
    },
  );

  it('no data: traffic increase halts (403, no retry) with the no-data reason; the rollout may start; no rollback', async () => {
    const pair = await sidecarPair(uniqueService('flagger-nodata'), FLAGGER);
    await published(pair, (b) => b.verdict === 'inconclusive');
    for (const a of await callAll(pair, 'confirm-rollout')) expect(a.ok).toBe(true);
    for (const a of await callAll(pair, 'confirm-traffic-increase')) {
      expect([a.ok, a.status]).toEqual([false, 403]);
      expect(a.body).toMatch(/no traffic to either version in the window: hold \(policy.noData.noTraffic\)/);
    }
    for (const a of await callAll(pair, 'rollback')) expect(a.ok).toBe(false);
  });

  it('fail: after the consecutive breaches the rollback hook fires on every pod; the latch is the dry run, the flag untouched', async () => {
    const pair = await sidecarPair(uniqueService('flagger-fail'), { ...FLAGGER, canaryErrorEvery: 1 });
    await Promise.all([load(pair.baseline, 40), load(pair.canary, 40)]);
    const answers = await eventually(
      async () => {
        const all = await callAll(pair, 'rollback');
        return all.every((a) => a.ok) ? all : undefined;
      },
      8000,
      'the rollback hook firing on both pods',
    );
    for (const a of answers) expect(JSON.parse(a.body)).toMatchObject({ hook: 'rollback', verdict: 'fail', state: 'rolled_back' });
    // The next revision may start: Flagger asks confirm-rollout with this revision's checksum, before it updates it.
    for (const a of await callAll(pair, 'confirm-rollout')) expect([a.ok, a.status]).toEqual([true, 200]);
    for (const a of await callAll(pair, 'confirm-promotion')) {
      expect([a.ok, a.status]).toEqual([false, 403]);
      expect(a.body).toMatch(
        /is fail \(lease_holder, rolled_back\): rollback latched \(advisory: dry run\) by (b1|c1) at .*3 consecutive failing evaluations: canary error ratio/,
      );
    }
    const redis = await client();
    try {
      expect(await redis.exists(`cg-test:{${pair.service}}:dry-run`)).toBe(1);
      expect(await redis.get(`cg-test:flag:{${pair.service}}`)).toBeNull();
    } finally {
      redis.disconnect();
    }
  });

  it('Redis down: hooks answer from policy.noData.redisUnreachable (hold: 403), never a 5xx that Flagger would retry', async () => {
    const redis = await privateRedis();
    const pair = await sidecarPair(uniqueService('flagger-down'), { ...FLAGGER, redisUrl: redis.url });
    await Promise.all([load(pair.baseline, 30), load(pair.canary, 30)]);
    await published(pair, (b) => b.verdict === 'pass');
    await redis.stop();
    for (const type of ['confirm-rollout', 'confirm-traffic-increase', 'confirm-promotion', 'rollback']) {
      for (const a of await callAll(pair, type)) {
        expect([a.ok, a.status], `${type}: ${a.body}`).toEqual([false, 403]);
        expect(a.body).toMatch(/is inconclusive \(redis_unreachable\): Redis unreachable: the fleet window could not be read/);
      }
    }
  });

  it('a new revision (event hook, new checksum) clears the previous revision\u2019s latch, only with the admin token', async () => {
    // A 2 s window, so that the failing revision's slots leave it quickly once the canary is healthy.
    const pair = await sidecarPair(uniqueService('flagger-revision'), {
      ...FLAGGER,
      canaryErrorEvery: 1,
      env: { CANARY_GATE_WINDOW_SLOTS: '8' },
    });
    const event = (checksum: string, token?: string) =>
      payload('Progressing', checksum, {
        eventMessage: 'New revision detected',
        eventType: 'Normal',
        timestamp: String(Date.now()),
        ...(token ? { token } : {}),
      });
    const first = await flaggerCall(shippedWebhooks(pair.canary.admin).event!.url, event('rev-a'));
    expect(JSON.parse(first.body)).toMatchObject({ revision: 'rev-a', previous: null, newRevision: false, latchCleared: false });
    await Promise.all([load(pair.baseline, 40), load(pair.canary, 40)]);
    const hookOf = (checksum: string) => payload('Progressing', checksum);
    await eventually(
      async () => ((await callAll(pair, 'rollback', hookOf('rev-a'))).every((a) => a.ok) ? true : undefined),
      8000,
      'the latch',
    );

    // The next revision is healthy. Its pods serve a window's worth of traffic before Flagger announces it, so the
    // failing revision's slots have left the window (README, "Flagger": what a new revision does not clear).
    pair.setCanaryErrorEvery(0);
    const traffic = steadyLoad(pair.pods);
    cleanups.push(() => traffic.stop());
    await sleep(2 * 8 * 250);
    const url = shippedWebhooks(pair.baseline.admin).event!.url;
    const refused = await flaggerCall(url, event('rev-b'));
    expect([refused.ok, refused.status]).toEqual([false, 403]);
    expect(refused.body).toMatch(/needs metadata.token/);
    expect((await callAll(pair, 'rollback', hookOf('rev-a'))).every((a) => a.ok)).toBe(true);
    // Hooks of the new revision do not act on the previous revision's latch, cleared or not.
    for (const a of await callAll(pair, 'rollback', hookOf('rev-b'))) {
      expect([a.ok, a.status]).toEqual([false, 403]);
      expect(a.body).toMatch(/the latch is revision rev-a's, not this one's; judged: all checks pass/);
    }
    for (const a of await callAll(pair, 'confirm-traffic-increase', hookOf('rev-b'))) {
      expect(JSON.parse(a.body)).toMatchObject({ verdict: 'pass', state: 'rolled_back', latchApplies: false });
    }

    // Both pods get the event at once (the Service may send retries anywhere): exactly one clears the latch.
    const both = await callAll(pair, 'event', event('rev-b', TOKEN));
    expect(both.map((a) => a.ok)).toEqual([true, true]);
    const bodies = both.map((a) => JSON.parse(a.body));
    expect(bodies.filter((b) => b.latchCleared)).toEqual([{ revision: 'rev-b', previous: 'rev-a', newRevision: true, latchCleared: true }]);
    // Announced again (Flagger sends every event): nothing more to clear.
    const again = await flaggerCall(url, event('rev-b', TOKEN));
    expect(JSON.parse(again.body)).toMatchObject({ newRevision: false, latchCleared: false });
    const redis = await client();
    try {
      expect(await redis.exists(`cg-test:{${pair.service}}:dry-run`)).toBe(0);
      const audit = await redis.xrevrange(`cg-test:{${pair.service}}:audit`, '+', '-', 'COUNT', 1);
      expect(audit[0]![1]).toEqual(expect.arrayContaining(['reset', 'flagger:shop/checkout']));
    } finally {
      redis.disconnect();
    }
    // The holder reads the reset, judges the healthy revision afresh, and publishes it: the rollback hook stays quiet.
    await published(pair, (b) => b.state === 'healthy' && b.verdict === 'pass');
    for (const a of await callAll(pair, 'rollback', hookOf('rev-b'))) expect(a.ok).toBe(false);
  });
});
