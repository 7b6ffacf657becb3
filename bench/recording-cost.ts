/**
 * Recording cost: nanoseconds per request of the telemetry path (slot recorder: HDR record + two counters; plus the
 * http.server.request.duration histogram), and of one HDR record with the WebAssembly and the pure JS builds of
 * hdr-histogram-js. Each contender runs the same seeded latencies, alternated over rounds; medians reported.
 */
import * as hdr from 'hdr-histogram-js';
import { createGateMetrics } from '../src/metrics/gate-metrics.ts';
import { SlotRecorder } from '../src/core/slot-recorder.ts';
import { initHistograms } from '../src/core/histogram.ts';
import { median, SMOKE, writeResult } from './lib.ts';

const N = SMOKE ? 20_000 : 2_000_000;
const ROUNDS = SMOKE ? 1 : 5;
initHistograms();
const latencies = Float64Array.from({ length: 65_536 }, (_, i) => 1000 + ((i * 2654435761) % 400_000));

function time(run: (n: number) => void): number {
  run(Math.min(N, 50_000)); // warm-up: JIT and wasm tiers
  const start = process.hrtime.bigint();
  run(N);
  return Number(process.hrtime.bigint() - start) / N;
}

const recorder = new SlotRecorder(5000, Date.now());
const metrics = createGateMetrics(
  () => ({
    version: 'v2',
    role: 'canary',
    requests: 0,
    errors: 0,
    phase: 'healthy',
    consecutiveBreaches: 0,
    evaluations: { pass: 0, warn: 0, inconclusive: 0, fail: 0 },
    redisHolds: 0,
    warnings: 0,
    rollbacks: 0,
    redisErrors: 0,
    corruptPayloads: 0,
    slotsDropped: 0,
    rejected: {},
    leaseHeld: false,
    latest: null,
    pod: null,
  }),
  { service: 'bench', pod: 'bench-0', version: 'v2' },
);
const wasm = hdr.build({
  useWebAssembly: true,
  lowestDiscernibleValue: 1,
  highestTrackableValue: 60_000_000,
  numberOfSignificantValueDigits: 3,
});
const js = hdr.build({
  bitBucketSize: 32,
  lowestDiscernibleValue: 1,
  highestTrackableValue: 60_000_000,
  numberOfSignificantValueDigits: 3,
});

const contenders: Record<string, (n: number) => void> = {
  'slot recorder (HDR wasm + counters)': (n) => {
    for (let i = 0; i < n; i++) recorder.record(latencies[i & 65_535]!, (i & 127) === 0);
  },
  'slot recorder + http.server.request.duration': (n) => {
    for (let i = 0; i < n; i++) {
      const us = latencies[i & 65_535]!;
      recorder.record(us, (i & 127) === 0);
      metrics.recordRequest(us, 'GET', 200, 'ok', '');
    }
  },
  'HDR record, WebAssembly build': (n) => {
    for (let i = 0; i < n; i++) wasm.recordValue(latencies[i & 65_535]!);
  },
  'HDR record, JS build (32-bit buckets)': (n) => {
    for (let i = 0; i < n; i++) js.recordValue(latencies[i & 65_535]!);
  },
};
const samples = new Map<string, number[]>(Object.keys(contenders).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(contenders);
  for (const name of round % 2 === 0 ? names : names.reverse()) samples.get(name)!.push(time(contenders[name]!));
}
const figures = [...samples].map(([contender, ns]) => ({ contender, nsPerRequest: Number(median(ns).toFixed(1)) }));
await metrics.shutdown();
wasm.destroy();
const path = await writeResult('recording-cost', { requestsPerRound: N, rounds: ROUNDS }, figures);
console.table(figures);
console.log(`wrote ${path}`);
