/**
 * The latency histogram: a thin wrapper over hdr-histogram-js that fixes the range, the precision and the
 * bucket size once, so every pod encodes slots that every other pod can decode and merge.
 *
 * Range 1 µs .. 60 s at 3 significant decimal digits (relative error <= 0.1 % at any value), int32 buckets,
 * WebAssembly build (~30 ns per record on the reference machine, ~18 KB per histogram; see DESIGN.md).
 * WebAssembly histograms live outside the JS heap: every histogram created here must be `destroy()`ed.
 */
import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

export type { Histogram };

/** Lowest recordable latency, µs. */
export const LOWEST_LATENCY_US = 1;
/** Highest recordable latency, µs (60 s). Larger values are clamped to it, never thrown. */
export const HIGHEST_LATENCY_US = 60_000_000;
/** Significant decimal digits kept by every histogram. */
export const SIGNIFICANT_DIGITS = 3;
const BIT_BUCKET_SIZE = 32;

let wasmReady = false;

/** Loads the WebAssembly build once per process (synchronous, ~ms). Safe to call many times. */
export function initHistograms(): void {
  if (wasmReady) return;
  hdr.initWebAssemblySync();
  wasmReady = true;
}

/** A new, empty latency histogram (WebAssembly, int32 buckets, 1 µs .. 60 s, 3 digits). Call `destroy()` when done. */
export function createHistogram(): Histogram {
  initHistograms();
  return hdr.build({
    bitBucketSize: BIT_BUCKET_SIZE,
    lowestDiscernibleValue: LOWEST_LATENCY_US,
    highestTrackableValue: HIGHEST_LATENCY_US,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    autoResize: false,
    useWebAssembly: true,
  });
}

/**
 * Records one latency. Rounds to whole µs and clamps into [1 µs, 60 s] first, because hdr-histogram-js throws past
 * its highest trackable value. No allocation, no I/O.
 * @param latencyUs latency in microseconds (any finite number; NaN and negatives are recorded as 1 µs)
 */
export function recordLatency(histogram: Histogram, latencyUs: number): void {
  let v = Math.round(latencyUs);
  if (!(v >= LOWEST_LATENCY_US)) v = LOWEST_LATENCY_US;
  else if (v > HIGHEST_LATENCY_US) v = HIGHEST_LATENCY_US;
  histogram.recordValue(v);
}

/** Encodes a histogram to the HdrHistogram compressed V2 format, base64 (portable across HdrHistogram ports). */
export function encodeHistogram(histogram: Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

/**
 * Decodes a histogram produced by {@link encodeHistogram}. The result is a WebAssembly histogram: `destroy()` it.
 * @throws Error from hdr-histogram-js when the text is not a valid compressed histogram
 */
export function decodeHistogram(base64: string): Histogram {
  initHistograms();
  return hdr.decodeFromCompressedBase64(base64, BIT_BUCKET_SIZE, true);
}

/**
 * The value at a quantile, µs, or NaN for an empty histogram.
 * @param quantile 0..1 (e.g. 0.95); HDR reports the highest value equivalent to the bucket that holds the quantile
 */
export function quantileUs(histogram: Histogram, quantile: number): number {
  if (histogram.totalCount === 0) return Number.NaN;
  return histogram.getValueAtPercentile(quantile * 100);
}
