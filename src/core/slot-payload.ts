/**
 * The fleet payload: what one pod writes for one (service, version, slot) into the slot's Redis hash, field = pod.
 *
 * Format (JSON, version 1), for example:
 *   {"v":1,"slot":352112345,"slotMs":5000,"requests":812,"errors":3,"hist":"HISTFAAAA..."}
 * `hist` is the HdrHistogram compressed V2 base64 encoding of the slot's latencies in µs; its total count equals
 * `requests`, at most {@link maxSlotRequests} (an implausible total is corrupt). Any other shape is corrupt: decoding throws {@link CanaryGateError} `CG_PAYLOAD_CORRUPT`, and the
 * reader skips the field and counts it.
 */
import { CanaryGateError, ErrorCodes } from './errors.ts';
import { decodeHistogram, HIGHEST_LATENCY_US, type Histogram } from './histogram.ts';
import type { SealedSlot } from './slot-recorder.ts';
import type { SlotHistogram } from './window.ts';

export const PAYLOAD_VERSION = 1;

/**
 * Largest payload a reader fetches and parses, bytes. The largest valid encoding of the fleet's histogram inflates to
 * 156,712 bytes (histogram.ts); deflate adds at most a few bytes per 16 KiB block, base64 a third, the JSON around it
 * about 120 bytes: about 210 KB. Anything longer is not a payload and is skipped before it leaves Redis (the reader's
 * Lua refuses to return it), so a 200 MB field costs the sidecar nothing.
 */
export const MAX_SLOT_PAYLOAD_BYTES = 256 * 1024;

/**
 * Most requests one pod can plausibly serve per second (a sidecar saturates at a few thousand on two cores; this is
 * 20x that). A payload claiming more in its slot is corrupt: counts near 2^31 would wrap the window's int32 buckets.
 */
export const MAX_POD_REQUESTS_PER_S = 100_000;

/** The most requests a pod-slot payload of `slotMs` may hold ({@link MAX_POD_REQUESTS_PER_S} x the slot's seconds). */
export const maxSlotRequests = (slotMs: number): number => Math.ceil((MAX_POD_REQUESTS_PER_S * slotMs) / 1000);

/** A decoded fleet payload. The histogram is WebAssembly: the caller owns it and must `destroy()` it. */
export type DecodedSlot = SlotHistogram;

/** Serializes a sealed slot for the fleet hash. */
export function encodeSlotPayload(slot: SealedSlot): string {
  return JSON.stringify({
    v: PAYLOAD_VERSION,
    slot: slot.slotIndex,
    slotMs: slot.slotMs,
    requests: slot.requests,
    errors: slot.errors,
    hist: slot.encoded,
  });
}

function corrupt(reason: string, cause?: unknown): CanaryGateError {
  return new CanaryGateError(ErrorCodes.PAYLOAD_CORRUPT, `corrupt slot payload: ${reason}`, { cause });
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Parses and checks one payload.
 * @param text the hash field's value
 * @param expectedSlotIndex the slot named by the hash key; a payload for another slot is corrupt
 * @param expectedSlotMs the reader's slot length, ms; a payload written with another slot length is foreign
 * @throws CanaryGateError `CG_PAYLOAD_CORRUPT` for anything but a well-formed, self-consistent payload
 */
export function decodeSlotPayload(text: string, expectedSlotIndex: number, expectedSlotMs: number): DecodedSlot {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt('not JSON', err);
  }
  if (typeof raw !== 'object' || raw === null) throw corrupt('not an object');
  const p = raw as Record<string, unknown>;
  if (p.v !== PAYLOAD_VERSION) throw corrupt(`unknown payload version ${String(p.v)}`);
  if (p.slot !== expectedSlotIndex) throw corrupt(`slot ${String(p.slot)} in a hash for slot ${expectedSlotIndex}`);
  if (p.slotMs !== expectedSlotMs) throw corrupt(`slotMs ${String(p.slotMs)} differs from ${expectedSlotMs}`);
  if (!isCount(p.requests) || !isCount(p.errors)) throw corrupt('requests and errors must be non-negative integers');
  if (p.errors > p.requests) throw corrupt(`errors ${p.errors} > requests ${p.requests}`);
  if (p.requests > maxSlotRequests(expectedSlotMs))
    throw corrupt(`requests ${p.requests} is implausible for one pod in one slot (at most ${maxSlotRequests(expectedSlotMs)})`);
  if (typeof p.hist !== 'string' || p.hist.length === 0) throw corrupt('hist must be a base64 string');
  let histogram: Histogram;
  try {
    histogram = decodeHistogram(p.hist);
  } catch (err) {
    throw corrupt('hist is not an HdrHistogram', err);
  }
  // A histogram with a wider range than the fleet's (e.g. written by another HDR port, or values past 60 s) decodes,
  // but merging it into a window histogram aborts inside WebAssembly: reject it here, where rejects are counted.
  if (histogram.highestTrackableValue > HIGHEST_LATENCY_US) {
    const highest = histogram.highestTrackableValue;
    histogram.destroy();
    throw corrupt(`histogram range up to ${highest} µs exceeds the fleet's ${HIGHEST_LATENCY_US} µs`);
  }
  if (histogram.totalCount !== p.requests) {
    const count = histogram.totalCount;
    histogram.destroy();
    throw corrupt(`histogram holds ${count} values but requests is ${p.requests}`);
  }
  return { slotIndex: p.slot, requests: p.requests, errors: p.errors, histogram };
}
