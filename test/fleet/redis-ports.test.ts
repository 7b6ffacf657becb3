import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { serviceKeys, type ServiceKeys } from '../../src/core/keys.ts';
import { createHistogram, encodeHistogram, recordLatency } from '../../src/core/histogram.ts';
import { FleetReader, type FleetReaderOptions } from '../../src/fleet/fleet-reader.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { waitReady } from '../../src/fleet/redis-client.ts';
import { RedisSlotStore } from '../../src/fleet/redis-slot-store.ts';
import { RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import type { SealedSlot } from '../../src/core/slot-recorder.ts';
import { client, dropService, eventually, sleep, uniqueService } from '../helpers/redis.ts';

const PREFIX = 'cg-test';
const SLOT_MS = 1000;

function decision(by: string, atMs = 1_700_000_000_000): RollbackDecision {
  return {
    state: 'rolled_back',
    trigger: 'automatic',
    reason: `test decision by ${by}`,
    checks: [],
    baseline: null,
    canary: null,
    consecutiveBreaches: 3,
    atMs,
    at: new Date(atMs).toISOString(),
    by,
  };
}

/** A sealed slot holding `latenciesUs`, the first `errors` of them errors. */
function sealed(slotIndex: number, latenciesUs: number[], errors = 0): SealedSlot {
  const h = createHistogram();
  for (const v of latenciesUs) recordLatency(h, v);
  const encoded = encodeHistogram(h);
  h.destroy();
  return { slotIndex, slotMs: SLOT_MS, requests: latenciesUs.length, errors, encoded };
}

let redis: Redis;
let service: string;
let keys: ServiceKeys;
let flagKey: string;

beforeEach(async () => {
  redis = await client();
  service = uniqueService('ports');
  keys = serviceKeys(PREFIX, service);
  flagKey = `cg-test:flag:{${service}}`;
});
afterEach(async () => {
  await dropService(redis, PREFIX, service, flagKey);
  redis.disconnect();
});

describe('RedisLease', () => {
  it('gives the lease to one holder, renews it for that holder only, and hands it over with a larger token', async () => {
    const lease = new RedisLease(redis, keys);
    const a = await lease.acquire('pod-a', 5000);
    expect(a).toBeGreaterThan(0);
    expect(await lease.acquire('pod-b', 5000)).toBe(0);
    expect(await lease.holder()).toBe('pod-a');
    expect(await lease.acquire('pod-a', 5000)).toBe(a);
    await lease.release('pod-b'); // not the holder: no effect
    expect(await lease.holder()).toBe('pod-a');
    await lease.release('pod-a');
    expect(await lease.holder()).toBeNull();
    const b = await lease.acquire('pod-b', 5000);
    expect(b).toBeGreaterThan(a);
  });

  it('never hands out a token twice, even when a failover lost the last increment of the fencing counter', async () => {
    const lease = new RedisLease(redis, keys);
    const a = await lease.acquire('pod-a', 5000);
    await lease.release('pod-a');
    // What a promoted replica holds when the old primary died before replicating its last INCR: the counter one behind.
    await redis.set(keys.fence, String(a - 1));
    await sleep(5); // a failover takes seconds; here, enough for the server's clock to move on
    const b = await lease.acquire('pod-b', 5000);
    expect(b).toBeGreaterThan(a);
  });

  it('expires when not renewed, and another holder takes it', async () => {
    const lease = new RedisLease(redis, keys);
    const a = await lease.acquire('pod-a', 150);
    expect(await lease.acquire('pod-b', 150)).toBe(0);
    await sleep(250);
    const b = await lease.acquire('pod-b', 5000);
    expect(b).toBeGreaterThan(a);
    expect(await lease.holder()).toBe('pod-b');
  });
});

describe('RedisFlagStore', () => {
  const options = () => ({ flagKey, rollbackValue: '0', auditMaxLen: 100 });

  it('refuses a write with an old fencing token and accepts the current holder once', async () => {
    const lease = new RedisLease(redis, keys);
    const flags = new RedisFlagStore(redis, keys, options());
    await redis.set(flagKey, '25');
    const old = await lease.acquire('old', 100);
    await sleep(200);
    const current = await lease.acquire('new', 5000);
    expect(current).toBeGreaterThan(old);

    expect(await flags.rollback(decision('old'), old)).toBe('fenced');
    expect(await redis.get(flagKey)).toBe('25');
    expect(await flags.latch()).toBeNull();

    const subscriber = redis.duplicate();
    const messages: string[] = [];
    await waitReady(subscriber, 3000);
    await subscriber.subscribe(keys.events);
    subscriber.on('message', (_channel: string, message: string) => messages.push(message));

    expect(await flags.rollback(decision('new'), current)).toBe('written');
    expect(await redis.get(flagKey)).toBe('0');
    expect(await flags.rollback(decision('new-again'), current)).toBe('already_latched');
    const latch = await flags.latch();
    expect(latch !== null && latch !== 'corrupt' && latch.by).toBe('new');
    const audit = await redis.xrange(keys.audit, '-', '+');
    expect(audit).toHaveLength(1);
    expect(audit[0]![1]).toEqual(expect.arrayContaining(['event', 'rollback', 'actor', 'new']));
    const event = await eventually(() => messages[0], 2000, 'rollback event');
    expect(JSON.parse(event)).toMatchObject({ event: 'rollback', actor: 'new', flag: '0' });
    subscriber.disconnect();
  });

  it('writes with no lease at all only when unfenced (token 0: a manual rollback)', async () => {
    const flags = new RedisFlagStore(redis, keys, options());
    expect(await flags.rollback(decision('ghost'), 7)).toBe('fenced');
    expect(await flags.rollback({ ...decision('operator'), trigger: 'manual' }, 0)).toBe('written');
    expect(await redis.get(flagKey)).toBe('0');
  });

  it('reset clears the latch, sets the flag when asked, records the reset (time, actor, reason) and audits it', async () => {
    const flags = new RedisFlagStore(redis, keys, options());
    await flags.rollback(decision('x'), 0);
    expect(await flags.lastResetMs()).toBeNull();
    await flags.reset('alice@cli', 'fixed in v2.0.1', '5', 1_700_000_123_000);
    expect(await flags.latch()).toBeNull();
    expect(await redis.get(flagKey)).toBe('5');
    expect(await flags.lastResetMs()).toBe(1_700_000_123_000);
    expect(await flags.lastReset()).toEqual({ atMs: 1_700_000_123_000, actor: 'alice@cli', reason: 'fixed in v2.0.1' });
    await flags.reset('bob@cli', 'no flag change', null, 1_700_000_124_000);
    expect(await redis.get(flagKey)).toBe('5');
    const audit = await redis.xrange(keys.audit, '-', '+');
    expect(audit.map(([, fields]) => fields[1])).toEqual(['rollback', 'reset', 'reset']);
  });

  it('reports a decision record edited into garbage as corrupt, not as absent', async () => {
    const flags = new RedisFlagStore(redis, keys, options());
    await redis.set(keys.decision, '{"state":"who knows"');
    expect(await flags.latch()).toBe('corrupt');
    await redis.set(keys.decision, '{"state":"healthy","atMs":1,"reason":"x"}');
    expect(await flags.latch()).toBe('corrupt');
    // The forged minimal record of issue 15: the three fields the old reader checked, nothing else.
    await redis.set(keys.decision, '{"state":"rolled_back","atMs":1,"reason":"x"}');
    expect(await flags.latch()).toBe('corrupt');
  });
});

describe('FleetReader over RedisSlotStore', () => {
  /** A reader of baseline v1 and canary v2 over `slots` slots of SLOT_MS. */
  const readerOf = (slots: number, options?: FleetReaderOptions): FleetReader =>
    new FleetReader(redis, keys, { baseline: 'v1', canary: 'v2' }, SLOT_MS, slots, options);

  it('merges every pod of both versions across slots, once each, and picks up a late pod on the next read', async () => {
    const store = new RedisSlotStore(redis, keys, 5, SLOT_MS);
    const reader = readerOf(5);
    const last = 1_000_000;
    await store.publish('v1', 'a', sealed(last - 1, [1000, 2000, 3000], 1));
    await store.publish('v1', 'b', sealed(last, [4000, 5000]));
    await store.publish('v2', 'c', sealed(last, [10_000, 20_000, 30_000, 40_000], 2));
    await store.publish('v1', 'old', sealed(last - 5, [9_000_000])); // outside the 5-slot window

    const first = await reader.read(last);
    expect(first.baseline).toMatchObject({ version: 'v1', requests: 5, errors: 1, pods: 2, slotsReported: 2 });
    expect(first.canary).toMatchObject({ version: 'v2', requests: 4, errors: 2, pods: 1 });
    expect(first.canary.errorRatio).toBe(0.5);
    expect(first.baseline.p99Us).toBeLessThan(5100); // the 9 s sample of slot last-5 is not in the window
    expect(first.merged).toBe(3);

    await store.publish('v2', 'late', sealed(last, [50_000]));
    const second = await reader.read(last);
    expect(second.merged).toBe(1);
    expect(second.canary).toMatchObject({ requests: 5, pods: 2 });
    expect(second.baseline.requests).toBe(5);

    const moved = await reader.read(last + 4); // slot last-1 leaves the window
    expect(moved.baseline).toMatchObject({ requests: 2, errors: 0 });
    reader.destroy();
  });

  it('fetches only the slot hashes whose field count changed since it last fetched them', async () => {
    const store = new RedisSlotStore(redis, keys, 4, SLOT_MS);
    const reader = readerOf(4);
    const last = 3_000_000;
    for (let index = last - 3; index <= last; index++) {
      await store.publish('v1', 'a', sealed(index, [1000]));
      await store.publish('v2', 'b', sealed(index, [2000]));
    }
    // Every fetch of this service's slot hashes (the HKEYS the fetch script runs), as Redis itself saw it (MONITOR on a
    // second connection; it shows the commands scripts run).
    const monitor = await redis.duplicate().monitor();
    const fetched: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'hkeys' && args[1]?.includes(`{${service}}`)) fetched.push(args[1]);
    });
    const marker = async (): Promise<void> => {
      // MONITOR output trails the replies: an ECHO of our own marks the end of what a read sent.
      const seen = new Promise<void>((resolve) =>
        monitor.on('monitor', (_t: string, args: string[]) => args[0] === 'echo' && args[1] === service && resolve()),
      );
      await redis.echo(service);
      await seen;
    };
    try {
      expect((await reader.read(last)).baseline.requests).toBe(4);
      await marker();
      expect(fetched).toHaveLength(8);
      fetched.length = 0;
      expect((await reader.read(last)).merged).toBe(0);
      await marker();
      expect(fetched).toEqual([]);
      await store.publish('v2', 'late', sealed(last - 1, [3000]));
      const third = await reader.read(last);
      await marker();
      expect(fetched).toEqual([keys.slot('v2', last - 1)]);
      expect(third.canary).toMatchObject({ requests: 5, pods: 2 });
    } finally {
      monitor.disconnect();
      reader.destroy();
    }
  });

  it('yields to the event loop every sliceMs of decoding, with the same result as a read in one go', async () => {
    const store = new RedisSlotStore(redis, keys, 4, SLOT_MS);
    const last = 4_000_000;
    for (let index = last - 3; index <= last; index++) {
      for (let pod = 0; pod < 10; pod++)
        await store.publish(
          pod % 2 === 0 ? 'v1' : 'v2',
          `pod-${pod}`,
          sealed(index, [1000 + pod * 100, 2000 + (index % 7)], pod % 3 === 0 ? 1 : 0),
        );
    }
    // A clock that advances 1 ms each time it is read: with a 5 ms slice the 40 payloads need several yields.
    let fakeMs = 0;
    let yields = 0;
    const sliced = readerOf(4, { sliceMs: 5, now: () => fakeMs++, yieldToLoop: async () => void yields++ });
    const whole = readerOf(4, { sliceMs: Number.POSITIVE_INFINITY });
    try {
      const [a, b] = [await sliced.read(last), await whole.read(last)];
      expect(yields).toBeGreaterThanOrEqual(6);
      expect(a.merged).toBe(40);
      // JSON drops the quantile functions, which differ by identity; every figure must match.
      expect(JSON.parse(JSON.stringify(a))).toEqual(JSON.parse(JSON.stringify(b)));
      expect(a.baseline.quantileUs(0.9)).toBe(b.baseline.quantileUs(0.9));
    } finally {
      sliced.destroy();
      whole.destroy();
    }
  });

  it('rejects a read whose reader is destroyed while it yields, and merges nothing after', async () => {
    const store = new RedisSlotStore(redis, keys, 2, SLOT_MS);
    const last = 5_000_000;
    for (let pod = 0; pod < 6; pod++) await store.publish('v1', `pod-${pod}`, sealed(last, [1000]));
    let reader: FleetReader | undefined;
    const tapped: string[] = [];
    // sliceMs 0: a yield before every payload, and the first one destroys the reader.
    reader = readerOf(2, { sliceMs: 0, yieldToLoop: async () => reader?.destroy() });
    reader.tap = (_version, _slot, pod) => tapped.push(pod);
    await expect(reader.read(last)).rejects.toThrow('FleetReader destroyed during a read');
    expect(tapped).toEqual([]);
  });

  it('skips a corrupt or foreign payload, counts it once, and keeps judging the rest', async () => {
    const store = new RedisSlotStore(redis, keys, 3, SLOT_MS);
    const reader = readerOf(3);
    const last = 2_000_000;
    await store.publish('v1', 'good', sealed(last, [1000, 1000]));
    await redis.hset(
      keys.slot('v1', last),
      'garbage',
      'not json at all',
      'foreign',
      JSON.stringify({ v: 1, slot: last, slotMs: 5000, requests: 0, errors: 0, hist: 'x' }),
    );
    const first = await reader.read(last);
    expect(first.corrupt).toBe(2);
    expect(first.baseline.requests).toBe(2);
    const second = await reader.read(last);
    expect(second.corrupt).toBe(0);
    expect(reader.corruptTotal).toBe(2);
    reader.destroy();
  });

  it('sets a TTL a little longer than the window on every slot hash', async () => {
    const store = new RedisSlotStore(redis, keys, 12, 5000);
    await store.publish('v1', 'a', { ...sealed(3, [1]), slotMs: 5000 });
    const ttl = await redis.pttl(keys.slot('v1', 3));
    expect(ttl).toBeGreaterThan(12 * 5000);
    expect(ttl).toBeLessThanOrEqual(14 * 5000);
  });
});
