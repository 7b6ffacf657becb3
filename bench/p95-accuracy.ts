/**
 * p95 accuracy: for lognormal, bimodal and long-tail latencies spread over pods and slots, the p95 of the merged HDR
 * window (recorded, encoded, decoded and merged as in production) and Prometheus' histogram_quantile over the
 * exported http.server.request.duration buckets, each against the exact p95 of the same samples (sorted).
 *
 * histogram_quantile is computed here with Prometheus' own rule (promql/quantile.go bucketQuantile: linear
 * interpolation inside the bucket that holds the rank, the lowest bucket starting at 0) over DURATION_BUCKETS_S.
 */
import lognormal from '@stdlib/random-base-lognormal';
import randu from '@stdlib/random-base-randu';
import { initHistograms } from '../src/core/histogram.ts';
import { decodeSlotPayload, encodeSlotPayload } from '../src/core/slot-payload.ts';
import { SlotRecorder } from '../src/core/slot-recorder.ts';
import { FleetWindow } from '../src/core/window.ts';
import { DURATION_BUCKETS_S } from '../src/metrics/gate-metrics.ts';
import { SMOKE, writeResult } from './lib.ts';

const SAMPLES = SMOKE ? 24_000 : 600_000; // a multiple of PODS x SLOTS
const PODS = 10;
const SLOTS = 12;
const SLOT_MS = 5000;
initHistograms();

type Sampler = () => number;
const seeded = (seed: number) => randu.factory({ seed });
const distributions: Record<string, (seed: number) => Sampler> = {
  'lognormal (median 40 ms, sigma 0.5)': (seed) => lognormal.factory(Math.log(40_000), 0.5, { seed }),
  'bimodal (90 % at 20 ms, 10 % at 300 ms)': (seed) => {
    const u = seeded(seed);
    const fast = lognormal.factory(Math.log(20_000), 0.3, { seed: seed + 1 });
    const slow = lognormal.factory(Math.log(300_000), 0.3, { seed: seed + 2 });
    return () => (u() < 0.9 ? fast() : slow());
  },
  'long tail (Pareto, 10 ms minimum, alpha 1.5)': (seed) => {
    const u = seeded(seed);
    return () => 10_000 / (1 - u()) ** (1 / 1.5);
  },
};

/** Prometheus' bucketQuantile over cumulative counts per upper bound (seconds). */
function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[], total: number): number {
  const rank = q * total;
  const i = cumulative.findIndex((c) => c >= rank);
  if (i === -1) return bounds[bounds.length - 1]!; // in +Inf: Prometheus returns the highest finite bound
  const lower = i === 0 ? 0 : bounds[i - 1]!;
  const below = i === 0 ? 0 : cumulative[i - 1]!;
  return lower + ((bounds[i]! - lower) * (rank - below)) / (cumulative[i]! - below);
}

const figures = [];
for (const [name, make] of Object.entries(distributions)) {
  const sample = make(42);
  const window = new FleetWindow('v2', SLOT_MS, SLOTS);
  const all = new Float64Array(SAMPLES);
  const counts = new Array<number>(DURATION_BUCKETS_S.length).fill(0);
  let k = 0;
  for (let slot = 0; slot < SLOTS; slot++) {
    for (let pod = 0; pod < PODS; pod++) {
      const recorder = new SlotRecorder(SLOT_MS, slot * SLOT_MS);
      const n = SAMPLES / (SLOTS * PODS);
      for (let i = 0; i < n; i++) {
        const us = Math.min(sample(), 59_000_000);
        all[k++] = us;
        recorder.record(us, false);
        const b = DURATION_BUCKETS_S.findIndex((bound) => us / 1e6 <= bound);
        if (b !== -1) counts[b]!++;
      }
      const decoded = decodeSlotPayload(encodeSlotPayload(recorder.seal((slot + 1) * SLOT_MS)), slot, SLOT_MS);
      window.advanceTo(slot);
      window.add(`pod-${pod}`, decoded);
      decoded.histogram.destroy();
    }
  }
  all.sort();
  const exactUs = all[Math.ceil(0.95 * SAMPLES) - 1]!;
  const hdrUs = window.snapshot().p95Us;
  const cumulative = counts.map((_, i) => counts.slice(0, i + 1).reduce((a, b) => a + b, 0));
  const promUs = histogramQuantile(0.95, DURATION_BUCKETS_S, cumulative, SAMPLES) * 1e6;
  window.destroy();
  figures.push({
    distribution: name,
    samples: SAMPLES,
    exactP95Ms: Number((exactUs / 1000).toFixed(3)),
    hdrP95Ms: Number((hdrUs / 1000).toFixed(3)),
    hdrRelativeError: Number(((hdrUs - exactUs) / exactUs).toFixed(5)),
    prometheusP95Ms: Number((promUs / 1000).toFixed(3)),
    prometheusRelativeError: Number(((promUs - exactUs) / exactUs).toFixed(4)),
  });
}
const path = await writeResult('p95-accuracy', { samples: SAMPLES, pods: PODS, slots: SLOTS, bucketsS: DURATION_BUCKETS_S }, figures);
console.table(figures);
console.log(`wrote ${path}`);
