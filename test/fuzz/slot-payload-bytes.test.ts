/**
 * Fuzzing the fleet payload decoder below the JSON: the `hist` field's bytes (fast-check, seeded, bounded runs).
 * The text-level cases (random text, truncated or edited JSON) live in fuzz.test.ts; here the compressed HDR bytes,
 * and the header and counts inside the zlib stream, are cut, bit-flipped and rewritten, with the JSON kept valid and
 * `requests` matched to what the histogram decodes to, so that each case reaches the WebAssembly decoder and the
 * checks after it. Properties: decodeSlotPayload returns a slot or throws CG_PAYLOAD_CORRUPT, nothing else; the
 * decoder stays usable afterwards; whatever it accepts, a fleet window can merge and expire (FleetWindow).
 */
import { deflateSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanaryGateError, ErrorCodes } from '../../src/core/errors.ts';
import { createHistogram, decodeHistogram, encodeHistogram, quantileUs, recordLatency } from '../../src/core/histogram.ts';
import { decodeSlotPayload, PAYLOAD_VERSION, type DecodedSlot } from '../../src/core/slot-payload.ts';
import { FleetWindow } from '../../src/core/window.ts';

const SEED = 5_2026;
const SLOT = 7;
const SLOT_MS = 5000;

/** A fleet histogram of `latenciesUs`, encoded (compressed base64). */
function encoded(latenciesUs: readonly number[]): string {
  const h = createHistogram();
  for (const us of latenciesUs) recordLatency(h, us);
  const text = encodeHistogram(h);
  h.destroy();
  return text;
}

const VALUES = Array.from({ length: 299 }, (_, i) => (i + 1) * 1000);
const HIST = encoded(VALUES);
const COMPRESSED = Buffer.from(HIST, 'base64');
/** The uncompressed V2 encoding inside: cookie, payload length, offset, digits, lowest, highest, ratio, counts. */
const RAW = inflateSync(COMPRESSED.subarray(8, 8 + COMPRESSED.readInt32BE(4)));
const HEADER_BYTES = 40;

/** The compressed-format envelope (cookie, length, zlib stream) around an uncompressed encoding, base64. */
function wrap(raw: Buffer): string {
  const zipped = deflateSync(raw);
  const head = Buffer.alloc(8);
  head.writeInt32BE(COMPRESSED.readInt32BE(0), 0);
  head.writeInt32BE(zipped.length, 4);
  return Buffer.concat([head, zipped]).toString('base64');
}

/** The number of values `hist` decodes to, or undefined when it does not decode (so a payload can claim exactly that). */
function decodedCount(hist: string): number | undefined {
  try {
    const h = decodeHistogram(hist);
    const n = h.totalCount;
    h.destroy();
    return n;
  } catch {
    return undefined;
  }
}

function payload(hist: string, requests: number, errors = 0): string {
  return JSON.stringify({ v: PAYLOAD_VERSION, slot: SLOT, slotMs: SLOT_MS, requests, errors, hist });
}

/** decodeSlotPayload's outcome: the slot, or 'corrupt'; any other exception fails the property. */
function decodeOrCorrupt(text: string): DecodedSlot | 'corrupt' {
  try {
    return decodeSlotPayload(text, SLOT, SLOT_MS);
  } catch (err) {
    if (err instanceof CanaryGateError && err.code === ErrorCodes.PAYLOAD_CORRUPT) return 'corrupt';
    throw err;
  }
}

/** The decoder still decodes a valid payload to its values after whatever came before. */
function decoderStillHealthy(): void {
  const d = decodeSlotPayload(payload(HIST, VALUES.length), SLOT, SLOT_MS);
  try {
    expect(d.histogram.totalCount).toBe(VALUES.length);
    expect(quantileUs(d.histogram, 0.5)).toBeCloseTo(150_000, -3);
  } finally {
    d.histogram.destroy();
  }
}

/** Decodes the payload whose `requests` is what its histogram decodes to, and checks the outcome. */
function checkHist(hist: string): DecodedSlot | 'corrupt' {
  const outcome = decodeOrCorrupt(payload(hist, decodedCount(hist) ?? VALUES.length));
  if (outcome !== 'corrupt') {
    expect(Number.isSafeInteger(outcome.requests)).toBe(true);
    expect(outcome.histogram.totalCount).toBe(outcome.requests);
  }
  return outcome;
}

const release = (outcome: DecodedSlot | 'corrupt'): void => {
  if (outcome !== 'corrupt') outcome.histogram.destroy();
};

describe('fuzz: the histogram bytes of a fleet payload', () => {
  it('any recorded slot round-trips: counts and quantiles as recorded', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 90_000_000 }), { maxLength: 400 }), fc.nat(), (latencies, errorSeed) => {
        const errors = latencies.length === 0 ? 0 : errorSeed % (latencies.length + 1);
        const hist = encoded(latencies);
        const d = decodeSlotPayload(payload(hist, latencies.length, errors), SLOT, SLOT_MS);
        const reference = createHistogram();
        try {
          for (const us of latencies) recordLatency(reference, us);
          expect(d).toMatchObject({ slotIndex: SLOT, requests: latencies.length, errors });
          for (const q of [0.5, 0.95, 0.99, 1]) expect(quantileUs(d.histogram, q)).toEqual(quantileUs(reference, q));
        } finally {
          reference.destroy();
          d.histogram.destroy();
        }
      }),
      { seed: SEED, numRuns: 150 },
    );
  });

  // Known defect (see the report of issue 5): the decoder checks only the histogram's highest trackable value. A payload
  // whose header claims another lowest value or precision decodes to other values, passes every check, and either
  // skews the window (lowest 2 doubles every latency; 5 digits read the counts as values 30 x smaller) or cannot be
  // merged (lowest 1000: FleetWindow.add throws, the whole fleet read fails and is retried every evaluation).
  // Flip to `it` once decodeSlotPayload rejects any layout other than the fleet's.
  it('a header rewritten to another layout is refused, never merged as other values', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .integer({ min: 0, max: 5 })
            .filter((d) => d !== 3)
            .map((digits) => (r: Buffer) => r.writeInt32BE(digits, 12)),
          fc.bigInt({ min: 2n, max: 100_000n }).map((lowest) => (r: Buffer) => r.writeBigInt64BE(lowest, 16)),
        ),
        (mutate) => {
          const raw = Buffer.from(RAW);
          mutate(raw);
          const outcome = checkHist(wrap(raw));
          if (outcome === 'corrupt') return;
          const window = new FleetWindow('v1', SLOT_MS, 4);
          try {
            window.add('pod-a', outcome);
            // Accepted: then it must be the recorded values (the header said the fleet's layout after all).
            expect(window.snapshot().p50Us).toBeCloseTo(quantileUs(outcome.histogram, 0.5), -1);
            expect(quantileUs(outcome.histogram, 0.5)).toBeCloseTo(150_000, -3);
          } finally {
            window.destroy();
            outcome.histogram.destroy();
          }
        },
      ),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('whatever the decoder accepts from mutated bytes merges into a fleet window and leaves it empty on expiry', () => {
    const mutation = fc.array(fc.tuple(fc.nat({ max: RAW.length - 1 - HEADER_BYTES }), fc.integer({ min: 0, max: 7 })), {
      minLength: 1,
      maxLength: 3,
    });
    let accepted = 0;
    fc.assert(
      fc.property(mutation, (flips) => {
        // Only the counts are flipped here: the header (layout) is the fleet's, as the known defect above is about it.
        const raw = Buffer.from(RAW);
        for (const [at, bit] of flips) raw[HEADER_BYTES + at] = raw[HEADER_BYTES + at]! ^ (1 << bit);
        const outcome = checkHist(wrap(raw));
        if (outcome === 'corrupt') return;
        accepted++;
        const window = new FleetWindow('v1', SLOT_MS, 4);
        try {
          expect(window.add('pod-a', outcome)).toBe(true);
          expect(window.snapshot().requests).toBe(outcome.requests);
          window.advanceTo(SLOT + 10);
          expect(window.snapshot().requests).toBe(0);
          expect(Number.isNaN(window.snapshot().p95Us)).toBe(true);
        } finally {
          window.destroy();
          outcome.histogram.destroy();
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
    // The property is about accepted payloads: make sure the run exercised some.
    expect(accepted).toBeGreaterThan(20);
  });

  it('the compressed bytes cut anywhere or with bits flipped: a slot or CG_PAYLOAD_CORRUPT, and the decoder still works', () => {
    const mutation = fc.oneof(
      fc.nat({ max: COMPRESSED.length - 1 }).map((cut) => COMPRESSED.subarray(0, cut)),
      fc
        .array(fc.tuple(fc.nat({ max: COMPRESSED.length - 1 }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 })
        .map((flips) => {
          const b = Buffer.from(COMPRESSED);
          for (const [at, bit] of flips) b[at] = b[at]! ^ (1 << bit);
          return b;
        }),
      fc.uint8Array({ maxLength: 64 }).map((tail) => Buffer.concat([COMPRESSED.subarray(0, 8), tail])),
    );
    fc.assert(
      fc.property(mutation, (bytes) => {
        release(checkHist(bytes.toString('base64')));
      }),
      { seed: SEED, numRuns: 200 },
    );
    decoderStillHealthy();
  });

  // Known defect (see the report of issue 5 and wasm-heap.test.ts): WebAssembly decodes that abort leak inside
  // hdr-histogram-js's heap; after a few hundred of them every histogram in the process throws. This property finds it
  // within 200 runs, so it runs last in this file (the process's histograms are broken after it). Flip to `it` once
  // corrupt encodings are refused before they reach the WebAssembly decoder.
  it('the uncompressed encoding (header and counts) rewritten, re-compressed: a slot or CG_PAYLOAD_CORRUPT, and the decoder still works', () => {
    const int32 = fc.oneof(fc.integer(), fc.constantFrom(0, 1, -1, 2, 3, 5, 6, 0x7fffffff, -0x80000000));
    const int64 = fc.oneof(
      fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
      fc.constantFrom(0n, 1n, 2n, 1000n, 60_000_000n, 1n << 53n, -1n),
    );
    const mutation = fc.oneof(
      fc.record({ field: fc.constantFrom(4, 8, 12), value: int32 }).map(
        ({ field, value }) =>
          (r: Buffer) =>
            r.writeInt32BE(value, field),
      ),
      fc.record({ field: fc.constantFrom(16, 24, 32), value: int64 }).map(
        ({ field, value }) =>
          (r: Buffer) =>
            r.writeBigInt64BE(value, field),
      ),
      fc
        .array(fc.tuple(fc.nat({ max: RAW.length - 1 }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 })
        .map((flips) => (r: Buffer) => {
          for (const [at, bit] of flips) r[at] = r[at]! ^ (1 << bit);
        }),
      fc
        .uint8Array({ minLength: 1, maxLength: 64 })
        .map((bytes) => (r: Buffer) => r.set(bytes.subarray(0, r.length - HEADER_BYTES), HEADER_BYTES)),
    );
    fc.assert(
      fc.property(mutation, (mutate) => {
        const raw = Buffer.from(RAW);
        mutate(raw);
        release(checkHist(wrap(raw)));
      }),
      { seed: SEED, numRuns: 200 },
    );
    decoderStillHealthy();
  });
});
