/**
 * The fleet payload, from the specification: a valid payload round-trips; anything malformed (not JSON, wrong
 * version, wrong slot, wrong slotMs, negative or non-integer counts, errors > requests, an undecodable histogram,
 * a histogram whose count differs from requests) throws CanaryGateError CG_PAYLOAD_CORRUPT.
 */
import * as hdr from 'hdr-histogram-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { createHistogram, encodeHistogram, quantileUs, recordLatency } from '../../src/core/histogram.ts';
import { decodeSlotPayload, encodeSlotPayload, PAYLOAD_VERSION } from '../../src/core/slot-payload.ts';
import { SlotRecorder, type SealedSlot } from '../../src/core/slot-recorder.ts';

const SLOT = 352_112_345;
const SLOT_MS = 5000;

let sealed: SealedSlot;
/** The histogram of `sealed`, recorded a second time, for comparing quantiles. */
let reference: ReturnType<typeof createHistogram>;
let emptyHist: string;
let threeValuesHist: string;
let wideRangeHist: string;

beforeAll(() => {
  const values = Array.from({ length: 812 }, (_, i) => 1000 + ((i * 7919) % 250_000));
  const rec = new SlotRecorder(SLOT_MS, SLOT * SLOT_MS + 1234);
  reference = createHistogram();
  values.forEach((us, i) => {
    rec.record(us, i % 271 === 0); // errors at 0, 271, 542: 3
    recordLatency(reference, us);
  });
  sealed = rec.seal((SLOT + 1) * SLOT_MS);
  rec.destroy();

  const empty = createHistogram();
  emptyHist = encodeHistogram(empty);
  empty.destroy();
  const three = createHistogram();
  for (const us of [100, 200, 300]) recordLatency(three, us);
  threeValuesHist = encodeHistogram(three);
  three.destroy();
  // a histogram from another HDR setup: 1 µs .. 1 h, holding a 2 min value the fleet's 60 s histograms cannot hold
  const wide = hdr.build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: true,
  });
  wide.recordValue(120_000_000);
  wideRangeHist = hdr.encodeIntoCompressedBase64(wide);
  wide.destroy();
});
afterAll(() => reference.destroy());

/** A well-formed payload object (as parsed JSON) with one field changed. */
function payload(change: Record<string, unknown> = {}): string {
  const base = { v: PAYLOAD_VERSION, slot: SLOT, slotMs: SLOT_MS, requests: sealed.requests, errors: sealed.errors, hist: sealed.encoded };
  return JSON.stringify({ ...base, ...change });
}

function without(field: string): string {
  const p = JSON.parse(payload()) as Record<string, unknown>;
  delete p[field];
  return JSON.stringify(p);
}

describe('decodeSlotPayload: a valid payload', () => {
  it('round-trips counts, slot and histogram', () => {
    expect(sealed.requests).toBe(812);
    expect(sealed.errors).toBe(3);
    const text = encodeSlotPayload(sealed);
    expect(JSON.parse(text)).toEqual({ v: 1, slot: SLOT, slotMs: SLOT_MS, requests: 812, errors: 3, hist: sealed.encoded });
    const decoded = decodeSlotPayload(text, SLOT, SLOT_MS);
    try {
      expect(decoded).toMatchObject({ slotIndex: SLOT, requests: 812, errors: 3 });
      expect(decoded.histogram.totalCount).toBe(812);
      for (const q of [0, 0.5, 0.95, 0.99, 1])
        expect({ q, v: quantileUs(decoded.histogram, q) }).toEqual({ q, v: quantileUs(reference, q) });
    } finally {
      decoded.histogram.destroy();
    }
  });

  it('accepts an empty slot', () => {
    const decoded = decodeSlotPayload(payload({ requests: 0, errors: 0, hist: emptyHist }), SLOT, SLOT_MS);
    try {
      expect(decoded).toMatchObject({ slotIndex: SLOT, requests: 0, errors: 0 });
      expect(decoded.histogram.totalCount).toBe(0);
    } finally {
      decoded.histogram.destroy();
    }
  });

  it('accepts errors equal to requests', () => {
    const decoded = decodeSlotPayload(payload({ requests: 3, errors: 3, hist: threeValuesHist }), SLOT, SLOT_MS);
    decoded.histogram.destroy();
    expect(decoded.errors).toBe(3);
  });
});

describe('decodeSlotPayload: corrupt payloads throw CG_PAYLOAD_CORRUPT', () => {
  const cases: Array<[string, () => string]> = [
    ['empty text', () => ''],
    ['not JSON', () => 'HISTFAAAA'],
    ['truncated JSON', () => payload().slice(0, 40)],
    ['JSON null', () => 'null'],
    ['JSON number', () => '42'],
    ['JSON string', () => JSON.stringify(payload())],
    ['JSON array', () => '[1, 352112345, 5000, 812, 3]'],
    ['version missing', () => without('v')],
    ['version 2', () => payload({ v: 2 })],
    ['version "1" as text', () => payload({ v: '1' })],
    ['another slot', () => payload({ slot: SLOT + 1 })],
    ['slot missing', () => without('slot')],
    ['slot as text', () => payload({ slot: String(SLOT) })],
    ['another slotMs', () => payload({ slotMs: 10_000 })],
    ['slotMs missing', () => without('slotMs')],
    ['requests missing', () => without('requests')],
    ['requests negative', () => payload({ requests: -812 })],
    ['requests not an integer', () => payload({ requests: 812.5 })],
    ['requests as text', () => payload({ requests: '812' })],
    ['requests null', () => payload({ requests: null })],
    ['requests past safe integers', () => payload({ requests: 2 ** 53 + 2 })],
    ['errors missing', () => without('errors')],
    ['errors negative', () => payload({ errors: -1 })],
    ['errors not an integer', () => payload({ errors: 1.5 })],
    ['errors > requests', () => payload({ errors: 813 })],
    ['hist missing', () => without('hist')],
    ['hist empty', () => payload({ hist: '' })],
    ['hist a number', () => payload({ hist: 12345 })],
    ['hist not base64', () => payload({ hist: '!!!!' })],
    ['hist base64 but not a histogram', () => payload({ hist: Buffer.from('hello world, not HDR').toString('base64') })],
    ['hist truncated', () => payload({ hist: sealed.encoded.slice(0, 20) })],
    ['histogram holds fewer values than requests', () => payload({ requests: 813 })],
    ['histogram holds more values than requests', () => payload({ requests: 811 })],
    ['histogram of 3 values, requests 0', () => payload({ requests: 0, errors: 0, hist: threeValuesHist })],
    ['empty histogram, requests 5', () => payload({ requests: 5, errors: 0, hist: emptyHist })],
    // decodes, but no fleet window can merge it (values past 60 s): must be skipped as corrupt, not crash the merge
    ['histogram with a range past 60 s', () => payload({ requests: 1, errors: 0, hist: wideRangeHist })],
  ];

  it.each(cases)('%s', (_name, make) => {
    let thrown: unknown;
    try {
      const decoded = decodeSlotPayload(make(), SLOT, SLOT_MS);
      decoded.histogram.destroy();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CanaryGateError);
    expect((thrown as CanaryGateError).code).toBe(ErrorCodes.PAYLOAD_CORRUPT);
    expect((thrown as CanaryGateError).code).toBe('CG_PAYLOAD_CORRUPT');
  });

  it('names the expected slot in the message of a slot mismatch', () => {
    expect(() => decodeSlotPayload(payload({ slot: SLOT + 1 }), SLOT, SLOT_MS)).toThrow(String(SLOT));
  });
});
