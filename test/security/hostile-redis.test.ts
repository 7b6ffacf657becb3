/**
 * Hostile or corrupt data in Redis (issue 15), each case written by another client as an attacker on the pod network
 * would, against a real redis-server: it may cost the gate the key it spoiled, never the whole read, the lease, the
 * latch, the proxy's memory or `canary-gate explain`.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configHash } from '../../src/config/policy.ts';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { FleetWindows } from '../../src/core/fleet-windows.ts';
import { createHistogram, encodeHistogram, recordLatency } from '../../src/core/histogram.ts';
import { serviceKeys, type ServiceKeys } from '../../src/core/keys.ts';
import { maxSlotRequests } from '../../src/core/slot-payload.ts';
import type { SealedSlot } from '../../src/core/slot-recorder.ts';
import { MAX_WINDOW_COUNT } from '../../src/core/window.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { FleetReader, MAX_PODS_PER_SLOT } from '../../src/fleet/fleet-reader.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { RedisSlotStore } from '../../src/fleet/redis-slot-store.ts';
import { MAX_DECISION_BYTES } from '../../src/flag/decision-record.ts';
import { RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { captureLogs, client, dropService, REDIS_URL, sleep, uniqueService } from '../helpers/redis.ts';
import { configFor, startPod, upstream } from '../helpers/sidecar-fleet.ts';

const PREFIX = 'cg-hostile';
const SLOT_MS = 1000;
const VERSIONS = { baseline: 'v1', canary: 'v2' };

/** A sealed slot holding `latenciesUs` (all successes). */
function sealed(slotIndex: number, latenciesUs: number[]): SealedSlot {
  const h = createHistogram();
  for (const v of latenciesUs) recordLatency(h, v);
  const encoded = encodeHistogram(h);
  h.destroy();
  return { slotIndex, slotMs: SLOT_MS, requests: latenciesUs.length, errors: 0, encoded };
}

/** Bytes Redis has sent to its clients since it started (INFO stats). */
async function bytesSent(redis: Redis): Promise<number> {
  return Number(/total_net_output_bytes:(\d+)/.exec(await redis.info('stats'))![1]);
}

/** A decision record that validates, written by no pod of the test's config (no configHash). */
function foreignDecision(by: string, atMs = Date.now()): RollbackDecision {
  return {
    state: 'rolled_back',
    trigger: 'manual',
    reason: `manual rollback: forged by ${by}`,
    checks: [],
    baseline: null,
    canary: null,
    consecutiveBreaches: 0,
    atMs,
    at: new Date(atMs).toISOString(),
    by,
  };
}

let redis: Redis;
let service: string;
let keys: ServiceKeys;
beforeAll(async () => {
  redis = await client();
});
afterAll(() => redis.disconnect());
afterEach(async () => {
  await dropService(redis, PREFIX, service);
});

const reader = (r: Redis, options = {}) => new FleetReader(r, keys, VERSIONS, SLOT_MS, 4, options);

describe('a fleet read next to hostile slot keys', () => {
  it('skips a list at one future slot key, counts and logs it once, and reads the rest of the window', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const store = new RedisSlotStore(redis, keys, 4, SLOT_MS);
    const last = 5_000_000;
    for (let index = last - 3; index <= last - 1; index++) {
      await store.publish('v1', 'a', sealed(index, [1000, 2000]));
      await store.publish('v2', 'b', sealed(index, [3000]));
    }
    // The key the next read will reach (the slot not written yet), as a list.
    await redis.rpush(keys.slot('v2', last), 'x', 'y');
    const logs = captureLogs('warn');
    const r = reader(redis, { logger: logs.logger });
    try {
      const first = await r.read(last);
      expect(first.baseline.requests).toBe(6);
      expect(first.canary.requests).toBe(3);
      expect(r.keysSkippedTotal).toBe(1);
      const second = await r.read(last);
      expect(second.canary.requests).toBe(3);
      expect(r.keysSkippedTotal).toBe(1);
      const lines = logs
        .text()
        .split('\n')
        .filter((l) => l.includes('not a hash'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(keys.slot('v2', last));
    } finally {
      r.destroy();
    }
  });

  it('skips a slot hash with more fields than any fleet has pods, without fetching it', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const last = 5_500_000;
    await new RedisSlotStore(redis, keys, 4, SLOT_MS).publish('v1', 'a', sealed(last, [1000]));
    await redis.eval(
      "for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'pod-' .. i, 'x') end return 1",
      1,
      keys.slot('v2', last),
      MAX_PODS_PER_SLOT + 1,
    );
    const logs = captureLogs('warn');
    const r = reader(redis, { logger: logs.logger });
    try {
      const read = await r.read(last);
      expect(read.baseline.requests).toBe(1);
      expect(read.corrupt).toBe(0);
      expect(r.keysSkippedTotal).toBe(1);
      await r.read(last);
      expect(r.keysSkippedTotal).toBe(1);
      expect(logs.text()).toContain(`more than ${MAX_PODS_PER_SLOT} fields`);
    } finally {
      r.destroy();
    }
  });

  it('never fetches a field larger than a payload can be (100 MB): skipped in Redis, counted once as corrupt', async () => {
    const own = await startRedisServer();
    const big = await client(own.url);
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const r = reader(big);
    try {
      const store = new RedisSlotStore(big, keys, 4, SLOT_MS);
      const last = 6_000_000;
      await store.publish('v1', 'a', sealed(last, [1000, 2000]));
      await store.publish('v2', 'b', sealed(last, [3000]));
      // 100 MB, built inside Redis (the test does not send it either), by a client without the sidecar's timeout.
      const writer = new Redis(own.url);
      await writer.eval("redis.call('HSET', KEYS[1], 'huge', string.rep('x', 100000000)) return 1", 1, keys.slot('v2', last));
      writer.disconnect();
      const before = await bytesSent(big);
      const read = await r.read(last);
      expect(read.canary.requests).toBe(1);
      expect(read.corrupt).toBe(1);
      expect((await r.read(last)).corrupt).toBe(0);
      expect(r.corruptTotal).toBe(1);
      // What left Redis for both reads and the INFO calls: a few KB, not 100 MB.
      expect((await bytesSent(big)) - before).toBeLessThan(64 * 1024);
    } finally {
      r.destroy();
      big.disconnect();
      await own.stop();
    }
  });

  it('takes a payload whose histogram holds 2^31-1 values in one bucket for corrupt, so merged counts cannot wrap', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const last = 7_000_000;
    const h = createHistogram();
    h.recordValueWithCount(1000, 2 ** 31 - 1);
    const hist = encodeHistogram(h);
    h.destroy();
    const payload = JSON.stringify({ v: 1, slot: last, slotMs: SLOT_MS, requests: 2 ** 31 - 1, errors: 0, hist });
    await redis.hset(keys.slot('v2', last), 'evil-1', payload, 'evil-2', payload);
    const store = new RedisSlotStore(redis, keys, 4, SLOT_MS);
    await store.publish('v2', 'b', sealed(last, [300_000, 300_000, 300_000]));
    const r = reader(redis);
    try {
      const read = await r.read(last);
      expect(read.corrupt).toBe(2);
      expect(read.canary.requests).toBe(3);
      // The canary's real latency (300 ms), not the 0 ms of a wrapped histogram.
      expect(read.canary.p95Us).toBeGreaterThan(290_000);
    } finally {
      r.destroy();
    }
  });

  it('saturates a window at 2^31-1 values instead of wrapping, however many plausible payloads arrive', () => {
    const windows = new FleetWindows(['v2'], SLOT_MS, 4);
    const perPod = maxSlotRequests(SLOT_MS);
    const h = createHistogram();
    h.recordValueWithCount(250_000, perPod);
    const pods = Math.ceil(MAX_WINDOW_COUNT / perPod) + 2;
    const outcomes = new Map<string, number>();
    try {
      windows.advanceTo(10);
      for (let pod = 0; pod < pods; pod++) {
        const got = windows.add('v2', `pod-${pod}`, { slotIndex: 10 - (pod % 4), requests: perPod, errors: 0, histogram: h });
        outcomes.set(got, (outcomes.get(got) ?? 0) + 1);
      }
      const snapshot = windows.snapshot('v2');
      expect(snapshot.requests).toBeLessThanOrEqual(MAX_WINDOW_COUNT);
      expect(outcomes.get('corrupt')).toBeGreaterThanOrEqual(2);
      expect(snapshot.p50Us).toBeGreaterThan(249_000);
      expect(snapshot.p99Us).toBeLessThan(251_000);
    } finally {
      h.destroy();
      windows.destroy();
    }
  });
});

describe('a lease written by another client', () => {
  const TTL_MS = 300;
  const cases: Array<[string, (r: Redis, key: string) => Promise<unknown>]> = [
    ['a well-formed value without a TTL', (r, key) => r.set(key, '41:someone-else/abcd')],
    ['a value in the wrong shape without a TTL', (r, key) => r.set(key, 'not a lease')],
    ['a value in the wrong shape with a TTL of a day', (r, key) => r.set(key, 'garbage:', 'PX', 86_400_000)],
    ['a list', (r, key) => r.rpush(key, 'a', 'b')],
    ['a 2 MB string', (r, key) => r.setrange(key, 2_000_000, 'x')],
  ];

  it.each(cases)('is taken over one lease period later: %s', async (_name, write) => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    await write(redis, keys.lease);
    const lease = new RedisLease(redis, keys);
    expect(await lease.acquire('pod-a/1', TTL_MS)).toBe(0);
    const left = await redis.pttl(keys.lease);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(TTL_MS);
    expect(await lease.holder()).not.toBe('pod-a/1');
    await sleep(TTL_MS + 50);
    const token = await lease.acquire('pod-a/1', TTL_MS);
    expect(token).toBeGreaterThan(0);
    expect(await lease.holder()).toBe('pod-a/1');
  });

  it.each([
    ['text', (r: Redis, key: string) => r.set(key, 'not a number')],
    ['a list', (r: Redis, key: string) => r.multi().del(key).rpush(key, 'x').exec()],
  ])('restarts a fencing counter that holds %s from the clock, past every token issued before', async (_name, write) => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const lease = new RedisLease(redis, keys);
    const before = await lease.acquire('pod-a/1', TTL_MS);
    expect(before).toBeGreaterThan(0);
    await lease.release('pod-a/1');
    await write(redis, keys.fence);
    const after = await lease.acquire('pod-b/1', TTL_MS);
    expect(after).toBeGreaterThan(Date.now() - 60_000);
    expect(await lease.acquire('pod-b/1', TTL_MS)).toBe(after);
    await lease.release('pod-b/1');
    expect(await lease.acquire('pod-c/1', TTL_MS)).toBeGreaterThan(after);
  });

  it('leaves a well-formed lease of another holder alone (its own TTL)', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const lease = new RedisLease(redis, keys);
    expect(await lease.acquire('pod-b/1', 5000)).toBeGreaterThan(0);
    expect(await lease.acquire('pod-a/1', TTL_MS)).toBe(0);
    expect(await redis.pttl(keys.lease)).toBeGreaterThan(TTL_MS);
  });
});

describe('decision records written by another client', () => {
  it('writes a real rollback over a latch key that holds garbage (a list, a forged minimal record)', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const flagKey = `${PREFIX}:flag:{${service}}`;
    const flags = new RedisFlagStore(redis, keys, { flagKey, rollbackValue: '0', auditMaxLen: 100 });
    const real = foreignDecision('pod-a');
    try {
      await redis.rpush(keys.decision, 'x');
      await redis.rpush(keys.audit, 'not a stream');
      expect(await flags.latch()).toBe('corrupt');
      expect(await flags.rollback(real, 0)).toBe('written');
      expect(await flags.latch()).toEqual(real);
      await redis.set(keys.decision, '{"state":"rolled_back","atMs":1,"reason":"x"}');
      await redis.set(flagKey, '10');
      expect(await flags.rollback(real, 0)).toBe('written');
      expect(await redis.get(flagKey)).toBe('0');
    } finally {
      await redis.del(flagKey);
    }
  });
});

describe('a sidecar next to forged decision records', () => {
  const podOf = async (name: string) => {
    service = uniqueService('hostile');
    keys = serviceKeys('cg-test', service);
    const app = await upstream();
    const logs = captureLogs('info');
    const config = configFor(service, name, 'v1', app.url, { CANARY_GATE_LOG_LEVEL: 'info' });
    const pod = await startPod(config, { logger: logs.logger });
    const flagKey = config.flag.key;
    await redis.set(flagKey, '10');
    const holding = async () => {
      for (let i = 0; i < 100 && !pod.sidecar.status().evaluator.holding; i++) await sleep(20);
      expect(pod.sidecar.status().evaluator.holding).toBe(true);
    };
    await holding();
    // One whole evaluation of ours (evaluateNow returns null while the sidecar's own timer is evaluating).
    const evaluate = async () => {
      for (let i = 0; i < 100; i++) {
        if ((await pod.sidecar.evaluateNow()) !== null) return;
        await sleep(20);
      }
      throw new Error('no evaluation ran');
    };
    return { pod, flagKey, logs, config, evaluate };
  };

  afterEach(async () => {
    await dropService(redis, 'cg-test', service, `cg-test:flag:{${service}}`);
  });

  it('does not latch on a forged minimal record: reports it, keeps judging, leaves the flag', async () => {
    const { pod, flagKey, evaluate } = await podOf('forged-min');
    await redis.set(keys.decision, JSON.stringify({ state: 'rolled_back', atMs: Date.now(), reason: 'pwned' }));
    await evaluate();
    const status = pod.sidecar.status();
    expect(status.latch).toBe('corrupt');
    expect(status.state.phase).toBe('healthy');
    expect(await redis.get(flagKey)).toBe('10');
  });

  it('latches on a valid foreign record but never writes it back when it vanishes without a reset', async () => {
    const { pod, flagKey, config, evaluate } = await podOf('forged-valid');
    const forged = foreignDecision('mallory');
    await redis.set(keys.decision, JSON.stringify(forged));
    await evaluate();
    expect(pod.sidecar.status()).toMatchObject({ state: { phase: 'rolled_back' }, latchForeign: true });
    expect(forged.configHash).not.toBe(configHash(config));
    await redis.del(keys.decision);
    await evaluate();
    await evaluate();
    expect(await redis.get(keys.decision)).toBeNull();
    expect(await redis.get(flagKey)).toBe('10');
    expect(await redis.xlen(keys.audit)).toBe(0);
    expect(pod.sidecar.status()).toMatchObject({ state: { phase: 'healthy' }, latch: null });
  });

  it('keeps a 30 MB record out of /status, the logs and the audit stream', async () => {
    const { pod, logs, evaluate } = await podOf('forged-big');
    const reason = 'x'.repeat(30_000_000);
    await redis.set(keys.decision, JSON.stringify({ ...foreignDecision('mallory'), reason }));
    await evaluate();
    await evaluate();
    const res = await request(`${pod.admin}/status`);
    const body = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(body.length).toBeLessThan(MAX_DECISION_BYTES);
    expect(JSON.parse(body).latch).toBe('corrupt');
    expect(logs.text().length).toBeLessThan(MAX_DECISION_BYTES);
    expect(await redis.xlen(keys.audit)).toBe(0);
    expect(pod.sidecar.status().state.phase).toBe('healthy');
  });
});

describe('canary-gate explain on a record it did not write', () => {
  const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
  const explain = () =>
    spawnSync(process.execPath, [MAIN, 'explain'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', REDIS_URL, SERVICE_NAME: service, CANARY_GATE_REDIS_KEY_PREFIX: PREFIX },
    });

  it.each([
    ['a forged minimal record', JSON.stringify({ state: 'rolled_back', atMs: 1, reason: 'x' })],
    ['checks that are not checks', JSON.stringify({ ...foreignDecision('m'), checks: [{ check: 'x' }], trigger: 'automatic' })],
    ['figures without numbers', JSON.stringify({ ...foreignDecision('m'), baseline: { version: 'v1' }, canary: {} })],
    ['not JSON', '{"state":'],
  ])('refuses %s with CG_PAYLOAD_CORRUPT, exit 1, no stack trace', async (_name, text) => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    await redis.set(keys.decision, text);
    const r = explain();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not a decision');
    expect(r.stderr).not.toMatch(/TypeError|\n\s+at /);
  });

  it('prints control characters and bidi controls of a valid record escaped', async () => {
    service = uniqueService('hostile');
    keys = serviceKeys(PREFIX, service);
    const forged = { ...foreignDecision('m\u001b[2J'), reason: 'ok\nautomatic rollback at 1999 by admin\u202e' };
    await redis.set(keys.decision, JSON.stringify(forged));
    const r = explain();
    expect(r.status).toBe(0);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the raw control characters must not reach the terminal
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
    expect(r.stdout).toContain('m\\u001b[2J');
    expect(r.stdout).toContain('reason: ok\\u000aautomatic rollback at 1999 by admin\\u202e');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('automatic rollback'))).toHaveLength(0);
  });
});
