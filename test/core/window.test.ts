/**
 * Slots, recorders and fleet windows, from the specification.
 *
 * The property test splits seeded random latencies (lognormal and bimodal) across simulated pods and slots, sends
 * every pod-slot through the real path (SlotRecorder -> seal -> encodeSlotPayload -> decodeSlotPayload ->
 * FleetWindow.add) and compares the merged p50/p95/p99 with the exact quantile of all samples sorted.
 *
 * The bound, and why: the exact quantile is the nearest-rank value sorted[ceil(q x n) - 1] (the rank HDR uses). With
 * 3 significant digits HDR keeps 2048 sub-buckets per bucket, so the bucket holding a value v >= 2048 µs is
 * 2^(floor(log2 v) - 10) wide, at most v / 1024 (0.098 %); below 2048 µs buckets are 1 µs wide. HDR reports the
 * highest value of the bucket that holds the sample at that rank. So, per quantile:
 *   1. exact <= merged <= exact + bucketWidth(exact) - 1, where exact is the sample as recorded (whole µs, clamped):
 *      the merged quantile lies in the very bucket of the exact one ("one bucket", nothing more);
 *   2. against the raw (unrounded) sample: |merged - raw| / raw <= 1/1024 + 0.5 µs / raw, which is <= 0.1 % for
 *      every quantile these distributions produce (all above 1 ms): one bucket plus the rounding to whole µs.
 * Any lost, doubled or averaged pod, slot or histogram moves the quantile out of that bucket.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHistogram, HIGHEST_LATENCY_US, quantileUs, recordLatency } from '../../src/core/histogram.ts';
import { decodeSlotPayload, encodeSlotPayload } from '../../src/core/slot-payload.ts';
import { SlotRecorder, slotIndexAt } from '../../src/core/slot-recorder.ts';
import { FleetWindow, type WindowSnapshot } from '../../src/core/window.ts';
import { mulberry32 } from '../helpers/prng.ts';

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** Standard normal by Box-Muller. */
function normal(rand: () => number): number {
  const u1 = 1 - rand(); // (0, 1]
  const u2 = rand();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

const lognormal = (rand: () => number, medianUs: number, sigma: number): number => medianUs * Math.exp(sigma * normal(rand));

/** What the histogram stores for a latency: whole µs, clamped into [1 µs, 60 s]. */
const asRecorded = (us: number): number => Math.min(HIGHEST_LATENCY_US, Math.max(1, Math.round(us)));

/** Width of the HDR bucket (1 µs .. 60 s, 3 significant digits: 2048 sub-buckets) that holds integer value v. */
function bucketWidth(v: number): number {
  if (v < 2048) return 1;
  return 2 ** (31 - Math.clz32(v) - 10);
}

/** Nearest-rank quantile of sorted values: sorted[ceil(percent / 100 x n) - 1], rank computed in integers. */
function exactQuantile(sorted: Float64Array, percent: number): number {
  const rank = Math.max(1, Math.floor((percent * sorted.length + 99) / 100));
  return sorted[rank - 1]!;
}

const owned: Array<{ destroy(): void }> = [];
/** Registers a WebAssembly-backed object for destroy() after the test. */
function own<T extends { destroy(): void }>(x: T): T {
  owned.push(x);
  return x;
}
afterEach(() => {
  for (const x of owned.splice(0)) x.destroy();
});

/** Decodes a payload and merges it into the window, destroying the decoded histogram. */
function merge(window: FleetWindow, pod: string, text: string, slotIndex: number, slotMs: number): boolean {
  const decoded = decodeSlotPayload(text, slotIndex, slotMs);
  try {
    return window.add(pod, decoded);
  } finally {
    decoded.histogram.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// property: merged quantiles vs exact sort

interface Scenario {
  seed: number;
  kind: 'lognormal' | 'bimodal';
  /** Share of the slow mode (bimodal only); 0.05 puts p95 right at the edge between the modes. */
  slowShare?: number;
}

const SCENARIOS: Scenario[] = [
  { seed: 1, kind: 'lognormal' },
  { seed: 2, kind: 'lognormal' },
  { seed: 3, kind: 'lognormal' },
  { seed: 4, kind: 'lognormal' },
  { seed: 5, kind: 'lognormal' },
  { seed: 6, kind: 'bimodal', slowShare: 0.1 },
  { seed: 7, kind: 'bimodal', slowShare: 0.05 },
  { seed: 8, kind: 'bimodal', slowShare: 0.02 },
  { seed: 9, kind: 'bimodal', slowShare: 0.3 },
  { seed: 10, kind: 'bimodal', slowShare: 0.05 },
];

const maxRelativeError = { p50: 0, p95: 0, p99: 0 };
let propertyRuns = 0;

describe('FleetWindow: merged quantiles match an exact sort (property)', () => {
  afterAll(() => {
    const pct = (x: number): string => `${(x * 100).toFixed(4)} %`;
    console.log(
      `[window property] ${propertyRuns} runs, max relative error of merged vs exact sort: ` +
        `p50 ${pct(maxRelativeError.p50)}, p95 ${pct(maxRelativeError.p95)}, p99 ${pct(maxRelativeError.p99)} (bound ~0.098 %)`,
    );
  });

  it.each(SCENARIOS)('seed $seed, $kind $slowShare', ({ seed, kind, slowShare }) => {
    const rand = mulberry32(seed);
    const n = 50_000 + Math.floor(rand() * 150_001);
    const pods = 3 + Math.floor(rand() * 8);
    const slots = 3 + Math.floor(rand() * 6);
    const slotMs = [1000, 5000, 10_000][Math.floor(rand() * 3)]!;
    const errorShare = rand() * 0.05;
    // per-pod speed differences, so that averaging per-pod quantiles would be visibly wrong
    const podScale = Array.from({ length: pods }, () => 0.7 + rand() * 0.6);

    const raw = new Float64Array(n);
    const groups: number[][] = Array.from({ length: pods * slots }, () => []);
    const errorFlags = new Uint8Array(n);
    let errors = 0;
    for (let i = 0; i < n; i++) {
      const pod = Math.floor(rand() * pods);
      const slot = Math.floor(rand() * slots);
      let us: number;
      if (kind === 'lognormal') us = lognormal(rand, 50_000, 0.6);
      else us = rand() < slowShare! ? lognormal(rand, 800_000, 0.25) : lognormal(rand, 20_000, 0.3);
      raw[i] = us * podScale[pod]!;
      if (rand() < errorShare) {
        errorFlags[i] = 1;
        errors++;
      }
      groups[pod * slots + slot]!.push(i);
    }

    // the fleet: one recorder per pod, created at some time inside the first slot, sealed at each slot boundary
    const firstSlot = 340_000_000 + Math.floor(rand() * 1000);
    const window = own(new FleetWindow('v2', slotMs, slots));
    const recorders = Array.from({ length: pods }, () => own(new SlotRecorder(slotMs, firstSlot * slotMs + Math.floor(rand() * slotMs))));
    for (let s = 0; s < slots; s++) {
      const slotIndex = firstSlot + s;
      window.advanceTo(slotIndex);
      for (let p = 0; p < pods; p++) {
        const rec = recorders[p]!;
        expect(rec.currentSlotIndex).toBe(slotIndex);
        for (const i of groups[p * slots + s]!) rec.record(raw[i]!, errorFlags[i] === 1);
        const sealed = rec.seal((slotIndex + 1) * slotMs + Math.floor(rand() * 200));
        expect(sealed.slotIndex).toBe(slotIndex);
        expect(sealed.requests).toBe(groups[p * slots + s]!.length);
        expect(merge(window, `pod-${p}`, encodeSlotPayload(sealed), slotIndex, slotMs)).toBe(true);
      }
    }

    const snapshot = window.snapshot();
    expect(snapshot.requests).toBe(n);
    expect(snapshot.errors).toBe(errors);
    expect(snapshot.errorRatio).toBeCloseTo(errors / n, 12);
    expect(snapshot.pods).toBe(pods);
    expect(snapshot.slotsReported).toBe(slots);
    expect(snapshot.windowMs).toBe(slots * slotMs);
    expect(snapshot.requestsPerSecond).toBeCloseTo(n / ((slots * slotMs) / 1000), 9);

    const sortedRaw = Float64Array.from(raw).sort();
    for (const [key, percent, merged] of [
      ['p50', 50, snapshot.p50Us],
      ['p95', 95, snapshot.p95Us],
      ['p99', 99, snapshot.p99Us],
    ] as const) {
      const rawExact = exactQuantile(sortedRaw, percent);
      const exact = asRecorded(rawExact); // rounding and clamping are monotonic: the rank-th recorded value
      // 1. same bucket as the exact value
      expect(merged, `${key} below the exact value`).toBeGreaterThanOrEqual(exact);
      expect(merged, `${key} past the exact value's bucket`).toBeLessThanOrEqual(exact + bucketWidth(exact) - 1);
      // 2. relative error within one bucket (<= 1/1024) plus rounding to whole µs
      const rel = Math.abs(merged - rawExact) / rawExact;
      expect(rel, key).toBeLessThanOrEqual(1 / 1024 + 0.5 / rawExact);
      expect(rel, key).toBeLessThanOrEqual(0.001);
      maxRelativeError[key] = Math.max(maxRelativeError[key], rel);
    }
    propertyRuns++;
  });
});

// ---------------------------------------------------------------------------------------------------------------
// advanceTo, duplicates, empty windows

/** Seeded payloads for slots [first, first + count) from `pods` pods; each slot has its own latency scale. */
function buildPayloads(seed: number, slotMs: number, first: number, count: number, pods: number) {
  const rand = mulberry32(seed);
  const bySlot = new Map<number, { texts: Array<[string, string]>; samples: number[]; errors: number }>();
  for (let s = first; s < first + count; s++) {
    const texts: Array<[string, string]> = [];
    const samples: number[] = [];
    let errors = 0;
    const median = 10_000 * (1 + ((s * 7) % 5)); // 10..50 ms, different per slot
    for (let p = 0; p < pods; p++) {
      const rec = new SlotRecorder(slotMs, s * slotMs + 1);
      const k = 500 + Math.floor(rand() * 1500);
      for (let i = 0; i < k; i++) {
        const us = lognormal(rand, median, 0.5);
        const isError = rand() < 0.02;
        rec.record(us, isError);
        samples.push(asRecorded(us));
        if (isError) errors++;
      }
      texts.push([`pod-${p}`, encodeSlotPayload(rec.seal((s + 1) * slotMs))]);
      rec.destroy();
    }
    bySlot.set(s, { texts, samples, errors });
  }
  return bySlot;
}

/** The snapshot fields that must agree between an incremental window and one rebuilt from scratch. */
function essence(s: WindowSnapshot) {
  return {
    requests: s.requests,
    errors: s.errors,
    errorRatio: s.errorRatio,
    p50Us: s.p50Us,
    p95Us: s.p95Us,
    p99Us: s.p99Us,
    pods: s.pods,
    slotsReported: s.slotsReported,
  };
}

describe('FleetWindow.advanceTo', () => {
  const slotMs = 5000;
  const first = 400_000;
  const count = 9;
  const size = 4;
  const payloads = buildPayloads(42, slotMs, first, count, 3);

  function rebuilt(last: number): FleetWindow {
    const w = own(new FleetWindow('v1', slotMs, size));
    w.advanceTo(last);
    for (let s = Math.max(first, last - size + 1); s <= last; s++) {
      for (const [pod, text] of payloads.get(s)?.texts ?? []) merge(w, pod, text, s, slotMs);
    }
    return w;
  }

  it('drops exactly the expired slots: equal to a window rebuilt from the remaining slots, and to an exact sort', () => {
    const w = own(new FleetWindow('v1', slotMs, size));
    for (let s = first; s < first + count; s++) {
      w.advanceTo(s);
      for (const [pod, text] of payloads.get(s)!.texts) merge(w, pod, text, s, slotMs);
      const kept = [];
      for (let k = Math.max(first, s - size + 1); k <= s; k++) kept.push(k);
      expect(essence(w.snapshot())).toEqual(essence(rebuilt(s).snapshot()));

      const samples = Float64Array.from(kept.flatMap((k) => payloads.get(k)!.samples)).sort();
      const snap = w.snapshot();
      expect(snap.requests).toBe(samples.length);
      expect(snap.errors).toBe(kept.reduce((sum, k) => sum + payloads.get(k)!.errors, 0));
      expect(snap.slotsReported).toBe(kept.length);
      const exact = exactQuantile(samples, 95);
      expect(snap.p95Us).toBeGreaterThanOrEqual(exact);
      expect(snap.p95Us).toBeLessThan(exact + bucketWidth(exact));
      for (let k = first; k <= s; k++) expect({ k, has: w.has(k, 'pod-0') }).toEqual({ k, has: kept.includes(k) });
    }
  });

  it('drops the slots that a jump over several slots expires, and empties on a jump past the window', () => {
    const w = own(new FleetWindow('v1', slotMs, size));
    const last = first + size - 1;
    w.advanceTo(last);
    for (let s = first; s <= last; s++) for (const [pod, text] of payloads.get(s)!.texts) merge(w, pod, text, s, slotMs);
    w.advanceTo(last + 2); // slots first, first + 1 leave
    expect(essence(w.snapshot())).toEqual(essence(rebuiltOnly([first + 2, first + 3])));
    w.advanceTo(last + 2 + size);
    const empty = w.snapshot();
    expect(empty.requests).toBe(0);
    expect(empty.errors).toBe(0);
    expect(empty.slotsReported).toBe(0);
    expect(empty.pods).toBe(0);
    expect(Number.isNaN(empty.p95Us)).toBe(true);
  });

  function rebuiltOnly(slotIndexes: number[]): WindowSnapshot {
    const w = own(new FleetWindow('v1', slotMs, size));
    for (const s of slotIndexes) for (const [pod, text] of payloads.get(s)!.texts) merge(w, pod, text, s, slotMs);
    return w.snapshot();
  }
});

describe('FleetWindow.add', () => {
  const slotMs = 5000;
  const payloads = buildPayloads(7, slotMs, 500_000, 1, 2);
  const [[podA, textA], [, textB]] = payloads.get(500_000)!.texts as [[string, string], [string, string]];

  it('ignores a second payload of the same pod for the same slot', () => {
    const w = own(new FleetWindow('v2', slotMs, 4));
    expect(w.has(500_000, podA)).toBe(false);
    expect(merge(w, podA, textA, 500_000, slotMs)).toBe(true);
    expect(w.has(500_000, podA)).toBe(true);
    const once = w.snapshot();
    expect(merge(w, podA, textA, 500_000, slotMs)).toBe(false);
    expect(merge(w, podA, textB, 500_000, slotMs)).toBe(false); // a re-publish with other content: still the same pod-slot
    expect(essence(w.snapshot())).toEqual(essence(once));
  });

  it('merges the same content from another pod', () => {
    const w = own(new FleetWindow('v2', slotMs, 4));
    merge(w, podA, textA, 500_000, slotMs);
    const one = w.snapshot();
    expect(merge(w, 'another-pod', textA, 500_000, slotMs)).toBe(true);
    const two = w.snapshot();
    expect(two.requests).toBe(2 * one.requests);
    expect(two.errors).toBe(2 * one.errors);
    expect(two.pods).toBe(2);
    expect(two.p95Us).toBe(one.p95Us); // the same distribution twice has the same quantiles
  });

  it('leaves the window unchanged when a histogram does not fit', async () => {
    const hdr = await import('hdr-histogram-js');
    const w = own(new FleetWindow('v2', slotMs, 4));
    merge(w, podA, textA, 500_000, slotMs);
    const before = w.snapshot();
    const wide = hdr.build({
      bitBucketSize: 32,
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000_000,
      numberOfSignificantValueDigits: 3,
      useWebAssembly: true,
    });
    try {
      wide.recordValue(120_000_000);
      expect(() => w.add('foreign', { slotIndex: 500_001, requests: 1, errors: 0, histogram: wide })).toThrow();
    } finally {
      wide.destroy();
    }
    expect(essence(w.snapshot())).toEqual(essence(before));
    expect(w.has(500_001, 'foreign')).toBe(false);
  });
});

describe('FleetWindow: empty', () => {
  it('gives NaN quantiles and a NaN error ratio with no slots', () => {
    const s = own(new FleetWindow('v1', 5000, 12)).snapshot();
    expect(s).toMatchObject({ version: 'v1', requests: 0, errors: 0, pods: 0, slotsReported: 0, windowMs: 60_000, requestsPerSecond: 0 });
    for (const x of [s.errorRatio, s.p50Us, s.p95Us, s.p99Us]) expect(Number.isNaN(x)).toBe(true);
  });

  it('gives NaN quantiles with only empty slots, and counts the idle pod', () => {
    const w = own(new FleetWindow('v1', 5000, 12));
    const rec = own(new SlotRecorder(5000, 1000 * 5000));
    merge(w, 'idle', encodeSlotPayload(rec.seal(1001 * 5000)), 1000, 5000);
    const s = w.snapshot();
    expect(s).toMatchObject({ requests: 0, errors: 0, pods: 1, slotsReported: 1 });
    for (const x of [s.errorRatio, s.p50Us, s.p95Us, s.p99Us]) expect(Number.isNaN(x)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// histograms and recorders

describe('histogram range: 1 µs .. 60 s, clamped, never thrown', () => {
  const cases: Array<{ name: string; us: number; low: number; high: number }> = [
    { name: '0', us: 0, low: 1, high: 1 },
    { name: 'negative', us: -5_000, low: 1, high: 1 },
    { name: 'NaN', us: Number.NaN, low: 1, high: 1 },
    { name: '-Infinity', us: Number.NEGATIVE_INFINITY, low: 1, high: 1 },
    { name: '120 s', us: 120_000_000, low: HIGHEST_LATENCY_US, high: HIGHEST_LATENCY_US + bucketWidth(HIGHEST_LATENCY_US) - 1 },
    {
      name: '+Infinity',
      us: Number.POSITIVE_INFINITY,
      low: HIGHEST_LATENCY_US,
      high: HIGHEST_LATENCY_US + bucketWidth(HIGHEST_LATENCY_US) - 1,
    },
    { name: 'exactly 60 s', us: 60_000_000, low: HIGHEST_LATENCY_US, high: HIGHEST_LATENCY_US + bucketWidth(HIGHEST_LATENCY_US) - 1 },
    { name: '1234.4 µs (rounded to whole µs)', us: 1234.4, low: 1234, high: 1234 },
  ];
  it.each(cases)('$name is recorded once, in [$low, $high] µs', ({ us, low, high }) => {
    const h = own(createHistogram());
    expect(() => recordLatency(h, us)).not.toThrow();
    expect(h.totalCount).toBe(1);
    const v = quantileUs(h, 1);
    expect(v).toBeGreaterThanOrEqual(low);
    expect(v).toBeLessThanOrEqual(high);
  });

  it('carries clamped values through a recorder, a payload and a window', () => {
    const rec = own(new SlotRecorder(1000, 7_000));
    for (const us of [0, -1, Number.NaN, 120_000_000]) rec.record(us, false);
    const sealed = rec.seal(8_000);
    expect(sealed.requests).toBe(4);
    const w = own(new FleetWindow('v2', 1000, 3));
    merge(w, 'p', encodeSlotPayload(sealed), 7, 1000);
    const s = w.snapshot();
    expect(s.requests).toBe(4);
    expect(s.p50Us).toBe(1); // three of four values clamp to 1 µs
    expect(s.p99Us).toBeGreaterThanOrEqual(HIGHEST_LATENCY_US);
    expect(s.p99Us).toBeLessThan(HIGHEST_LATENCY_US * (1 + 1 / 1024));
  });
});

describe('SlotRecorder', () => {
  it('seals an empty slot into a valid, empty payload', () => {
    const rec = own(new SlotRecorder(5000, 123 * 5000 + 17));
    const sealed = rec.seal(124 * 5000 + 3);
    expect(sealed).toMatchObject({ slotIndex: 123, slotMs: 5000, requests: 0, errors: 0 });
    expect(typeof sealed.encoded).toBe('string');
    expect(sealed.encoded.length).toBeGreaterThan(0);
    const decoded = decodeSlotPayload(encodeSlotPayload(sealed), 123, 5000);
    try {
      expect(decoded).toMatchObject({ slotIndex: 123, requests: 0, errors: 0 });
      expect(decoded.histogram.totalCount).toBe(0);
    } finally {
      decoded.histogram.destroy();
    }
  });

  it('seals what was recorded before, and starts the next slot clean', () => {
    const rec = own(new SlotRecorder(1000, 50_500));
    rec.record(10_000, false);
    rec.record(20_000, true);
    rec.record(30_000, false);
    const a = rec.seal(51_000);
    rec.record(900_000, true);
    rec.record(900_000, true);
    const b = rec.seal(52_000);
    expect(a).toMatchObject({ slotIndex: 50, requests: 3, errors: 1 });
    expect(b).toMatchObject({ slotIndex: 51, requests: 2, errors: 2 });
    const da = decodeSlotPayload(encodeSlotPayload(a), 50, 1000);
    const db = decodeSlotPayload(encodeSlotPayload(b), 51, 1000);
    try {
      expect(da.histogram.totalCount).toBe(3);
      expect(quantileUs(da.histogram, 1)).toBeLessThan(31_000);
      expect(db.histogram.totalCount).toBe(2);
      expect(quantileUs(db.histogram, 0)).toBeGreaterThanOrEqual(899_000); // nothing of slot 50 left over
    } finally {
      da.histogram.destroy();
      db.histogram.destroy();
    }
  });

  it('aligns slots on the epoch: recorders created at different times in one slot agree', () => {
    const slotMs = 5000;
    const now = 1_700_000_001_234; // slot 340_000_000 holds [1_700_000_000_000, 1_700_000_005_000)
    expect(slotIndexAt(now, slotMs)).toBe(340_000_000);
    expect(slotIndexAt(1_700_000_000_000, slotMs)).toBe(340_000_000);
    expect(slotIndexAt(1_700_000_004_999, slotMs)).toBe(340_000_000);
    expect(slotIndexAt(1_700_000_005_000, slotMs)).toBe(340_000_001);
    const early = own(new SlotRecorder(slotMs, 1_700_000_000_000));
    const late = own(new SlotRecorder(slotMs, 1_700_000_004_999));
    expect(early.currentSlotIndex).toBe(late.currentSlotIndex);
    early.record(1000, false);
    late.record(2000, false);
    const a = early.seal(1_700_000_005_010);
    const b = late.seal(1_700_000_005_950);
    expect(a.slotIndex).toBe(340_000_000);
    expect(b.slotIndex).toBe(340_000_000);
    expect(early.currentSlotIndex).toBe(340_000_001);
    expect(late.currentSlotIndex).toBe(340_000_001);
    // both land in one window slot
    const w = own(new FleetWindow('v1', slotMs, 12));
    merge(w, 'early', encodeSlotPayload(a), 340_000_000, slotMs);
    merge(w, 'late', encodeSlotPayload(b), 340_000_000, slotMs);
    expect(w.snapshot()).toMatchObject({ requests: 2, pods: 2, slotsReported: 1 });
  });

  it('lends the histogram it sealed until the next seal, which clears it for reuse', () => {
    const rec = own(new SlotRecorder(1000, 60_000));
    rec.record(10_000, false);
    rec.record(20_000, false);
    const a = rec.seal(61_000);
    rec.record(500, false);
    expect(a.histogram.totalCount).toBe(2); // recording into the next slot leaves the lent one alone
    expect(quantileUs(a.histogram, 0)).toBeGreaterThanOrEqual(9_990);
    const b = rec.seal(62_000);
    expect(b.histogram.totalCount).toBe(1);
    expect(b.histogram).not.toBe(a.histogram);
    rec.record(700, false);
    const c = rec.seal(63_000);
    expect(c.histogram).toBe(a.histogram); // two histograms, swapped: nothing allocated per slot
    expect(c.histogram.totalCount).toBe(1);
  });

  it('starts the slot that holds the seal time after a pause of several slots', () => {
    const rec = own(new SlotRecorder(1000, 10_000));
    rec.seal(14_200);
    expect(rec.currentSlotIndex).toBe(14);
  });
});

describe('FleetWindow: rates over the time the data covers', () => {
  it('divides by the slots since the oldest reported one while the window fills, then by the window', () => {
    const slotMs = 5000;
    const first = 500_000;
    const size = 4;
    const payloads = buildPayloads(7, slotMs, first, 6, 2);
    const w = own(new FleetWindow('v1', slotMs, size));
    const covered: number[] = [];
    for (let s = first; s < first + 6; s++) {
      w.advanceTo(s);
      for (const [pod, text] of payloads.get(s)!.texts) merge(w, pod, text, s, slotMs);
      const snap = w.snapshot();
      covered.push(snap.coveredMs!);
      expect(snap.requestsPerSecond).toBeCloseTo(snap.requests / (snap.coveredMs! / 1000), 9);
      expect(snap.windowMs).toBe(size * slotMs);
    }
    expect(covered).toEqual([5000, 10_000, 15_000, 20_000, 20_000, 20_000]);
  });
});
