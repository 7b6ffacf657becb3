/**
 * The latency histogram: a thin wrapper over hdr-histogram-js that fixes the range, the precision and the
 * bucket size once, so every pod encodes slots that every other pod can decode and merge.
 *
 * Range 1 µs .. 60 s at 3 significant decimal digits (relative error <= 0.1 % at any value), int32 buckets,
 * WebAssembly build (~30 ns per record on the reference machine, ~18 KB per histogram; see ARCHITECTURE.md, "Facts that shaped it").
 * WebAssembly histograms live outside the JS heap: every histogram created here must be `destroy()`ed.
 */
import { inflateSync } from 'node:zlib';
import * as hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { CanaryGateError, ErrorCodes } from './errors.ts';

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

/** Counts array length of the fleet's layout (1 µs .. 60 s, 3 digits): 17408 buckets. */
const COUNTS_LENGTH = 17_408;
/** Inflated size of the largest valid encoding: a 40-byte header and at most 9 bytes per count. */
const MAX_INFLATED = 40 + 9 * COUNTS_LENGTH;
// HdrHistogram's compressed V2 cookies (HdrHistogram's EncodableHistogram; the low byte carries the word size).
const COMPRESSED_COOKIE = 0x1c849304;
const ENCODING_COOKIE = 0x1c849303;

/**
 * Checks an encoding in JavaScript before the WebAssembly decoder sees it: hdr-histogram-js's decoder aborts on counts
 * that run past its array, and every abort leaks inside its WebAssembly heap until all histograms of the process fail
 * (found by fuzzing, test/fuzz/wasm-heap.test.ts). Checks the V2 cookies, the fleet's layout (lowest 1, highest
 * 60 000 000, 3 digits), the payload length, and walks the ZigZag LEB128 counts so that no index passes the array.
 * @returns null when the encoding is sound, else the reason
 */
function unsoundEncoding(base64: string): string | null {
  const outer = Buffer.from(base64, 'base64');
  if (outer.length < 8 || (outer.readInt32BE(0) & ~0xff) !== (COMPRESSED_COOKIE & ~0xff)) return 'not a compressed HdrHistogram';
  const length = outer.readInt32BE(4);
  if (length < 0 || length > outer.length - 8) return 'compressed length past the end';
  let raw: Buffer;
  try {
    raw = inflateSync(outer.subarray(8, 8 + length), { maxOutputLength: MAX_INFLATED });
  } catch {
    return 'does not inflate within the size of a valid histogram';
  }
  if (raw.length < 40 || (raw.readInt32BE(0) & ~0xff) !== (ENCODING_COOKIE & ~0xff)) return 'not a V2 HdrHistogram encoding';
  const payloadLength = raw.readInt32BE(4);
  if (raw.readInt32BE(12) !== SIGNIFICANT_DIGITS) return `significant digits ${raw.readInt32BE(12)}, not ${SIGNIFICANT_DIGITS}`;
  if (Number(raw.readBigInt64BE(16)) !== LOWEST_LATENCY_US) return `lowest value ${raw.readBigInt64BE(16)}, not ${LOWEST_LATENCY_US}`;
  if (Number(raw.readBigInt64BE(24)) !== HIGHEST_LATENCY_US) return `highest value ${raw.readBigInt64BE(24)}, not ${HIGHEST_LATENCY_US}`;
  if (payloadLength < 0 || payloadLength !== raw.length - 40) return 'payload length differs from the data';
  let index = 0;
  let at = 40;
  while (at < raw.length) {
    let value = 0;
    let shift = 1;
    let byte: number;
    let read = 0;
    do {
      if (at >= raw.length || read === 9) return 'a count runs past the end';
      byte = raw[at++]!;
      value += (byte & 0x7f) * shift;
      shift *= 128;
      read++;
    } while (byte & 0x80);
    if (!Number.isSafeInteger(value)) return 'a count is too large';
    const zigzag = value % 2 === 0 ? value / 2 : -(value + 1) / 2;
    index += zigzag < 0 ? -zigzag : 1; // a negative value is a run of empty buckets
    if (index > COUNTS_LENGTH) return 'counts run past the histogram';
  }
  return null;
}

/**
 * Decodes a histogram produced by {@link encodeHistogram}. The result is a WebAssembly histogram: `destroy()` it.
 * @throws Error naming the reason when the text is not a sound compressed histogram of the fleet's layout (checked
 *   in JavaScript first, see unsoundEncoding), or from hdr-histogram-js
 */
export function decodeHistogram(base64: string): Histogram {
  initHistograms();
  const unsound = unsoundEncoding(base64);
  if (unsound !== null) throw new CanaryGateError(ErrorCodes.PAYLOAD_CORRUPT, `histogram: ${unsound}`);
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
