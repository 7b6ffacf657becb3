/**
 * Fleet scale: the evaluator's read of a window of 10, 100 and 1000 pods (12 slots each, both versions) from a real
 * Redis: milliseconds for a first read (every payload fetched, decoded and merged), for a steady-state read (one new
 * slot per pod, as every evaluation sees), the bytes each pod writes per slot, and the bytes Redis sent for a
 * steady-state read (its `total_net_output_bytes`, read before and after; the benchmark is Redis' only busy client),
 * and the longest the event loop was blocked during each read (perf_hooks' event-loop delay at 1 ms resolution): a
 * proxied request on the evaluating sidecar waits that long at worst. The first read also runs with the reader's
 * yielding turned off (`sliceMs: Infinity`), to show what yielding buys.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import lognormal from '@stdlib/random-base-lognormal';
import { Redis } from 'ioredis';
import { initHistograms } from '../src/core/histogram.ts';
import { serviceKeys } from '../src/core/keys.ts';
import { encodeSlotPayload } from '../src/core/slot-payload.ts';
import { SlotRecorder } from '../src/core/slot-recorder.ts';
import { FleetReader } from '../src/fleet/fleet-reader.ts';
import { median, SMOKE, writeResult } from './lib.ts';

const FLEETS = SMOKE ? [10] : [10, 100, 1000];
const SLOTS = 12;
const SLOT_MS = 5000;
const REQUESTS_PER_POD_SLOT = 500; // 100 rps per pod, 5 s slots
const ROUNDS = SMOKE ? 1 : 3;
initHistograms();
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: false });
const latency = lognormal.factory(Math.log(40_000), 0.5, { seed: 7 });

/** One pod's payload for one slot: a realistic histogram of REQUESTS_PER_POD_SLOT requests. */
function payload(slot: number): string {
  const r = new SlotRecorder(SLOT_MS, slot * SLOT_MS);
  for (let i = 0; i < REQUESTS_PER_POD_SLOT; i++) r.record(latency(), i % 200 === 0);
  return encodeSlotPayload(r.seal((slot + 1) * SLOT_MS));
}

/** Runs `fn`; resolves to its result and the longest event-loop block meanwhile, ms. */
async function withLongestBlock<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  try {
    const result = await fn();
    // The delay is recorded when the sampling timer next fires: let it fire once after the last block.
    await new Promise((r) => setTimeout(r, 5));
    return [result, delay.max / 1e6];
  } finally {
    delay.disable();
  }
}

/** Bytes Redis has sent to all its clients since it started (INFO stats). */
async function bytesSent(): Promise<number> {
  const m = /total_net_output_bytes:(\d+)/.exec(await redis.info('stats'));
  return Number(m?.[1] ?? Number.NaN);
}

const figures = [];
try {
  for (const pods of FLEETS) {
    const keys = serviceKeys('cg-bench', `fleet-${pods}-${process.pid}`);
    const first = 1_000_000;
    // A pool of distinct payloads per slot, assigned round-robin to pods: realistic sizes without encoding 24k histograms.
    const pool = Array.from({ length: SLOTS + 1 }, (_, s) => Array.from({ length: 20 }, () => payload(first + s)));
    const write = async (slot: number): Promise<number> => {
      const pipeline = redis.pipeline();
      let bytes = 0;
      for (const version of ['v1', 'v2']) {
        const fields: Record<string, string> = {};
        for (let p = 0; p < pods; p++) {
          const text = pool[slot - first]![p % 20]!;
          fields[`${version}-pod-${p}`] = text;
          bytes += text.length;
        }
        pipeline.hset(keys.slot(version, slot), fields).pexpire(keys.slot(version, slot), 600_000);
      }
      await pipeline.exec();
      return bytes / (2 * pods);
    };
    const bytesPerPodSlot: number[] = [];
    for (let s = 0; s < SLOTS; s++) bytesPerPodSlot.push(await write(first + s));
    const full: number[] = [];
    const steady: number[] = [];
    const steadyBytes: number[] = [];
    const blocks = { first: [] as number[], firstUnsliced: [] as number[], steady: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const unsliced = new FleetReader(redis, keys, { baseline: 'v1', canary: 'v2' }, SLOT_MS, SLOTS, {
        sliceMs: Number.POSITIVE_INFINITY,
      });
      blocks.firstUnsliced.push((await withLongestBlock(() => unsliced.read(first + SLOTS - 1)))[1]);
      unsliced.destroy();
      const reader = new FleetReader(redis, keys, { baseline: 'v1', canary: 'v2' }, SLOT_MS, SLOTS);
      let t = performance.now();
      const [read, firstBlock] = await withLongestBlock(() => reader.read(first + SLOTS - 1));
      full.push(performance.now() - t);
      blocks.first.push(firstBlock);
      if (read.baseline.requests !== pods * SLOTS * REQUESTS_PER_POD_SLOT) throw new Error(`merged ${read.baseline.requests} requests`);
      await write(first + SLOTS);
      const sentBefore = await bytesSent();
      t = performance.now();
      blocks.steady.push((await withLongestBlock(() => reader.read(first + SLOTS)))[1]);
      steady.push(performance.now() - t);
      steadyBytes.push((await bytesSent()) - sentBefore);
      reader.destroy();
      await redis.del(keys.slot('v1', first + SLOTS), keys.slot('v2', first + SLOTS));
    }
    const toDelete = await redis.keys(`cg-bench:{fleet-${pods}-${process.pid}}:*`);
    if (toDelete.length) await redis.del(...toDelete);
    figures.push({
      pods,
      slots: SLOTS,
      firstReadMs: Number(median(full).toFixed(1)),
      steadyReadMs: Number(median(steady).toFixed(1)),
      bytesPerPodPerSlot: Math.round(median(bytesPerPodSlot)),
      windowBytesInRedis: Math.round(median(bytesPerPodSlot) * pods * 2 * SLOTS),
      steadyReadBytes: Math.round(median(steadyBytes)),
      firstReadLongestBlockMs: Number(median(blocks.first).toFixed(1)),
      firstReadLongestBlockMsUnsliced: Number(median(blocks.firstUnsliced).toFixed(1)),
      steadyReadLongestBlockMs: Number(median(blocks.steady).toFixed(1)),
    });
  }
} finally {
  redis.disconnect();
}
const path = await writeResult('fleet-scale', { requestsPerPodSlot: REQUESTS_PER_POD_SLOT, rounds: ROUNDS }, figures);
console.table(figures);
console.log(`wrote ${path}`);
