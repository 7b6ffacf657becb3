/**
 * Rollouts on a real Redis: the lease holder's driver and the operator controls writing through the fenced Lua
 * transition script. Fencing (a paused old holder cannot promote), a restart in the middle of a step (a new holder
 * carries on with the evidence counted so far), a rollback during a pause (and a reset that does not restart the
 * rollout), the latch refusing a promotion atomically, and manual promote / abort with their audit entries.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { manualDecision } from '../../src/core/controller.ts';
import { serviceKeys, type ServiceKeys } from '../../src/core/keys.ts';
import { rolloutStages } from '../../src/core/rollout-plan.ts';
import type { GateEvent } from '../../src/core/transitions.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { RolloutControl } from '../../src/rollout/control.ts';
import { RolloutDriver, type HeldEvaluation } from '../../src/rollout/driver.ts';
import { RedisRolloutStore } from '../../src/rollout/redis-rollout-store.ts';
import { client, dropService, silent, uniqueService } from '../helpers/redis.ts';
import { passingVerdict, SLOT_MS } from './fixtures.ts';

const PREFIX = 'canary-gate';
const STAGES = rolloutStages([{ setWeight: 5 }, { setWeight: 25 }, { setWeight: 50 }], 10_000);
const OPERATOR = { actor: 'alice@cli', reason: 'ticket 42' };

let redis: Redis;
beforeAll(async () => {
  redis = await client();
});
afterAll(() => redis.disconnect());

interface Fixture {
  keys: ServiceKeys;
  flagKey: string;
  store: RedisRolloutStore;
  flags: RedisFlagStore;
  lease: RedisLease;
  control: (nowMs: number) => RolloutControl;
  driver: (pod: string, events?: GateEvent[]) => RolloutDriver;
}

const services: Array<{ service: string; flagKey: string }> = [];
afterEach(async () => {
  for (const { service, flagKey } of services.splice(0)) await dropService(redis, PREFIX, service, flagKey);
});

function fixture(): Fixture {
  const service = uniqueService('rollout');
  const keys = serviceKeys(PREFIX, service);
  // Never a hard-coded flag key: each test's own, with the service's hash tag as config flag.key should carry.
  const flagKey = `feature:{${service}}:v2_traffic_percentage`;
  services.push({ service, flagKey });
  const store = new RedisRolloutStore(redis, keys, { flagKey, auditMaxLen: 1000, latchKey: keys.decision });
  const flags = new RedisFlagStore(redis, keys, flagOptionsOf({ key: flagKey, rollbackValue: '0', auditMaxLen: 1000 }));
  return {
    keys,
    flagKey,
    store,
    flags,
    lease: new RedisLease(redis, keys),
    control: (nowMs) => new RolloutControl(store, STAGES, () => nowMs),
    driver: (pod, events = []) =>
      new RolloutDriver(store, STAGES, { pod, minSamples: 100, advisory: false }, silent, (e) => events.push(e)),
  };
}

/** An evaluation at `nowMs` whose newest slot (ending at nowMs) carried `requests` canary requests. */
function held(nowMs: number, requests: number, fencingToken: number): HeldEvaluation {
  const slot = Math.floor(nowMs / SLOT_MS) - 1;
  return { verdict: passingVerdict(nowMs), fencingToken, slots: [{ slot, startMs: slot * SLOT_MS, canaryRequests: requests }], nowMs };
}

async function auditEvents(keys: ServiceKeys): Promise<Array<Record<string, string>>> {
  const entries = await redis.xrange(keys.audit, '-', '+');
  return entries.map(([, fields]) => Object.fromEntries(fields.flatMap((v, i) => (i % 2 === 0 ? [[v, fields[i + 1]!]] : []))));
}

const T = 1_800_000_000_000;

describe('rollouts on Redis', () => {
  it('promotes on evidence through the lease holder and announces it; a paused old holder is fenced and cannot promote', async () => {
    const f = fixture();
    expect((await f.control(T).apply('start', OPERATOR)).outcome).toBe('written');
    expect(await redis.get(f.flagKey)).toBe('5');

    const oldToken = await f.lease.acquire('pod-a/1', 60_000);
    const oldEvents: GateEvent[] = [];
    const old = f.driver('pod-a', oldEvents);
    // pod-a counts evidence at 5 %: 20 slots x 30 requests (600, the fixture's checks need 300) over 100 s.
    for (let i = 1; i <= 20; i++) await old.afterEvaluation(held(T + i * SLOT_MS, 30, oldToken + 1000)); // a token not the lease's
    expect((await f.store.read()).state).toMatchObject({ status: 'progressing', weight: 5, canaryRequests: 0 });
    expect(await redis.get(f.flagKey)).toBe('5');

    // The real holder counts and promotes.
    const events: GateEvent[] = [];
    const holder = f.driver('pod-a', events);
    // 10 slots x 30 = 300 requests, 50 s at the weight: promoted at the tenth evaluation.
    for (let i = 1; i <= 10; i++) await holder.afterEvaluation(held(T + i * SLOT_MS, 30, oldToken));
    const promoted = (await f.store.read()).state!;
    expect(promoted).toMatchObject({ status: 'progressing', weight: 25, stage: 1 });
    expect(promoted.last.evidence).toMatchObject({ verdict: 'pass', requiredRequests: 300, stillNeeded: 0 });
    expect(await redis.get(f.flagKey)).toBe('25');
    expect(events.map((e) => e.kind)).toEqual(['rollout_promoted']);

    // The lease expires while pod-a is paused (as a GC pause or a partition would); pod-b takes it.
    await redis.del(f.keys.lease);
    const newToken = await f.lease.acquire('pod-b/1', 60_000);
    expect(newToken).toBeGreaterThan(oldToken);
    // pod-a wakes up with its old token and evidence enough for the next weight: fenced, nothing written.
    const late = T + 200 * SLOT_MS;
    const result = await holder.afterEvaluation(held(late, 10_000, oldToken));
    expect(result?.kind).toBe('transition');
    expect((await f.store.read()).state).toMatchObject({ weight: 25, revision: promoted.revision });
    expect(await redis.get(f.flagKey)).toBe('25');
    expect(events.map((e) => e.kind)).toEqual(['rollout_promoted']);
  });

  it('carries on after a restart in the middle of a step: the new holder keeps the evidence counted so far', async () => {
    const f = fixture();
    await f.control(T).apply('start', OPERATOR);
    const first = await f.lease.acquire('pod-a/1', 60_000);
    const a = f.driver('pod-a');
    for (let i = 1; i <= 5; i++) await a.afterEvaluation(held(T + i * SLOT_MS, 40, first));
    expect((await f.store.read()).state).toMatchObject({ weight: 5, canaryRequests: 200 });

    // pod-a dies; pod-b is elected and starts from Redis.
    await redis.del(f.keys.lease);
    const second = await f.lease.acquire('pod-b/1', 60_000);
    const events: GateEvent[] = [];
    const b = f.driver('pod-b', events);
    await b.afterEvaluation(held(T + 6 * SLOT_MS, 40, second));
    expect((await f.store.read()).state).toMatchObject({ weight: 5, canaryRequests: 240 });
    // 300 requests and 10 s at the weight: promoted by pod-b at the next evaluations.
    await b.afterEvaluation(held(T + 7 * SLOT_MS, 40, second));
    await b.afterEvaluation(held(T + 8 * SLOT_MS, 40, second));
    const s = (await f.store.read()).state!;
    expect(s).toMatchObject({ weight: 25, stage: 1 });
    expect(s.last).toMatchObject({ kind: 'promoted', actor: 'pod-b', fromWeight: 5, toWeight: 25 });
    expect(s.last.evidence?.canaryRequests).toBe(320);
    // The first read of pod-b's tenure learned the state and announced nothing of the past; its own promotion it did.
    expect(events.map((e) => e.kind)).toEqual(['rollout_promoted']);
  });

  it('records a rollback during a pause; the reset does not restart the rollout, and promote / resume are refused until a new start', async () => {
    const f = fixture();
    await f.control(T).apply('start', OPERATOR);
    const token = await f.lease.acquire('pod-a/1', 60_000);
    const events: GateEvent[] = [];
    const d = f.driver('pod-a', events);
    await d.afterEvaluation(held(T + SLOT_MS, 40, token));
    expect((await f.control(T + 6000).apply('pause', { actor: 'bob@cli', reason: 'lunch' })).outcome).toBe('written');
    await d.afterEvaluation(held(T + 2 * SLOT_MS, 40, token));
    expect(events.map((e) => e.kind)).toEqual(['rollout_paused']); // an operator's transition, announced by the holder

    // A rollback lands (manual here; the evaluator's is the same script) while the rollout is paused.
    expect(await f.flags.rollback(manualDecision({ reason: 'pager', by: 'carol', atMs: T + 11_000 }), 0)).toBe('written');
    expect(await redis.get(f.flagKey)).toBe('0');
    await d.afterEvaluation(held(T + 3 * SLOT_MS, 40, token));
    expect((await f.store.read()).state).toMatchObject({ status: 'rolled_back', weight: 5 });
    expect(events.map((e) => e.kind)).toEqual(['rollout_paused', 'rollout_rolled_back']);
    expect(await redis.get(f.flagKey)).toBe('0'); // the rollout never writes over the rollback

    // While latched: resume, promote and start are refused, by the state machine and by the script.
    for (const command of ['resume', 'promote', 'start'] as const)
      expect((await f.control(T + 20_000).apply(command, OPERATOR)).outcome).toBe('refused');

    // The reset clears the latch and sets the flag; the rollout stays rolled_back and the flag stays as the reset set it.
    await f.flags.reset('dave', 'fixed in v2.0.1', '0', T + 30_000);
    for (let i = 4; i <= 30; i++) await d.afterEvaluation(held(T + i * SLOT_MS, 100, token));
    expect((await f.store.read()).state).toMatchObject({ status: 'rolled_back' });
    expect(await redis.get(f.flagKey)).toBe('0');
    expect((await f.control(T + 200_000).apply('promote', OPERATOR)).outcome).toBe('refused');
    // A person starts a new rollout.
    const again = await f.control(T + 200_000).apply('start', { actor: 'dave@cli', reason: 'v2.0.1' });
    expect(again.outcome === 'written' && again.state).toMatchObject({ status: 'progressing', weight: 5, id: String(T + 200_000) });
  });

  it('refuses a promotion in the script when the latch lands between the read and the write', async () => {
    const f = fixture();
    await f.control(T).apply('start', OPERATOR);
    const { state } = await f.store.read();
    const promoted = { ...state!, weight: 25, stage: 1, revision: state!.revision + 1 };
    await f.flags.rollback(manualDecision({ reason: 'pager', by: 'carol', atMs: T + 1000 }), 0);
    const record = { ...state!.last, kind: 'promoted' as const, fromWeight: 5, toWeight: 25 };
    expect(await f.store.transition(promoted, record, state!.revision, 0, 25, true)).toBe('latched');
    expect(await redis.get(f.flagKey)).toBe('0');
    expect((await f.store.read()).state?.weight).toBe(5);
  });

  it('refuses a write computed from a state that changed since (compare-and-set)', async () => {
    const f = fixture();
    await f.control(T).apply('start', OPERATOR);
    const { state } = await f.store.read();
    await f.control(T + 1000).apply('pause', OPERATOR);
    expect(await f.store.transition({ ...state!, weight: 25 }, state!.last, state!.revision, 0, 25, true)).toBe('stale');
    expect(await redis.get(f.flagKey)).toBe('5');
  });

  it('manual promote, promote --full and abort write the flag and an audit entry with actor and reason', async () => {
    const f = fixture();
    const control = f.control(T);
    await control.apply('start', OPERATOR);
    const promoted = await control.apply('promote', { actor: 'erin@cli', reason: 'looks good' });
    expect(promoted.outcome === 'written' && [promoted.record.kind, promoted.flag]).toEqual(['promoted', 25]);
    expect(await redis.get(f.flagKey)).toBe('25');
    const aborted = await control.apply('abort', { actor: 'frank@10.0.0.7', reason: 'customer complaints' });
    expect(aborted.outcome === 'written' && [aborted.state.status, aborted.flag]).toEqual(['aborted', 0]);
    expect(await redis.get(f.flagKey)).toBe('0');
    await control.apply('start', OPERATOR);
    const full = await control.apply('promote', { actor: 'erin@cli', reason: 'ship it', full: true });
    expect(full.outcome === 'written' && [full.state.status, full.flag]).toEqual(['completed', 100]);

    const audit = await auditEvents(f.keys);
    expect(audit.map((e) => [e.event, e.actor, e.reason, e.flag])).toEqual([
      ['rollout_started', 'alice@cli', 'ticket 42', '5'],
      ['rollout_promoted', 'erin@cli', 'looks good', '25'],
      ['rollout_aborted', 'frank@10.0.0.7', 'customer complaints', '0'],
      ['rollout_started', 'alice@cli', 'ticket 42', '5'],
      ['rollout_completed', 'erin@cli', 'ship it', '100'],
    ]);
    expect(JSON.parse(audit[2]!.rollout!)).toMatchObject({ kind: 'aborted', fromWeight: 25, toWeight: 0 });
    expect((await f.store.history()).map((h) => h.record.kind)).toEqual(['started', 'promoted', 'aborted', 'started', 'completed']);
  });

  it('publishes every transition on the events channel, which the router follows', async () => {
    const f = fixture();
    const sub = await client();
    const messages: string[] = [];
    sub.on('message', (_c, m: string) => messages.push(m));
    await sub.subscribe(f.keys.events);
    try {
      await f.control(T).apply('start', OPERATOR);
      await f.control(T).apply('promote', OPERATOR);
      for (let i = 0; i < 40 && messages.length < 2; i++) await new Promise((r) => setTimeout(r, 25));
      expect(messages.map((m) => JSON.parse(m))).toEqual([
        { event: 'rollout_started', actor: 'alice@cli', reason: 'ticket 42', flag: '5' },
        { event: 'rollout_promoted', actor: 'alice@cli', reason: 'ticket 42', flag: '25' },
      ]);
    } finally {
      sub.disconnect();
    }
  });
});
