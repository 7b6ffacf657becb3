/**
 * Fuzzing (fast-check, seeded) of the decision-record reader: whatever another client writes at the decision key or
 * into an audit entry, parseDecision returns a decision or null and never throws, and what it returns
 * `canary-gate explain` prints without throwing and without a raw control character.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { explainDecision } from '../../src/core/explain.ts';
import { MAX_DECISION_BYTES, parseDecision, storedDecision } from '../../src/flag/decision-record.ts';

const SEED = 20261202;

/** A decision as the controller writes it: two checks (one window, one sequential evidence), both versions. */
const VALID: RollbackDecision = {
  state: 'rolled_back',
  trigger: 'automatic',
  reason: '3 consecutive failing evaluations: canary p95 87.0 ms vs 1.5 x baseline p95 48.0 ms = 72.0 ms',
  checks: [
    {
      check: 'latency_p95_relative',
      outcome: 'fail',
      observed: 86.9,
      threshold: 72,
      unit: 'ms',
      reason: 'canary p95 87.0 ms > 72.0 ms',
      evidence: {
        rule: 'share above',
        count: 61,
        requests: 200,
        latencyThresholdMs: 73.1,
        tolerated: 0.05,
        lowerBound: 0.21,
        alpha: 8.7e-7,
        neededRequests: 0,
      },
    },
    {
      check: 'error_ratio_relative',
      outcome: 'pass',
      observed: Number.NaN,
      threshold: 0.01,
      unit: 'ratio',
      reason: 'no errors',
      evidence: {
        method: 'cusum',
        rule: 'cusum of errors',
        statistic: 1.2,
        failThreshold: 11.3,
        falseAlarmRate: 0.0033,
        warnThreshold: 5.3,
        p0: 0.05,
        p1: 0.17,
        observedRate: 0.04,
        trialsPerS: 3,
        latencyThresholdMs: null,
        secondsToDecision: null,
        secondsToDetect: 40,
        underpowered: false,
        risingSinceMs: null,
        aboveSinceMs: null,
        canaryRequests: 200,
      },
    },
  ],
  baseline: {
    version: 'v1',
    requests: 1800,
    errors: 3,
    errorRatio: 0.0017,
    p50Ms: 20,
    p95Ms: 48,
    p99Ms: 66,
    requestsPerSecond: 180,
    pods: 1,
  },
  canary: { version: 'v2', requests: 200, errors: 9, errorRatio: 0.045, p50Ms: 26, p95Ms: 87, p99Ms: 132, requestsPerSecond: 20, pods: 1 },
  consecutiveBreaches: 3,
  atMs: 1_795_391_802_000,
  at: '2026-11-22T23:56:42.000Z',
  by: 'demo-v1-0',
  configHash: '5f0c2a9d41b7e613',
};
const VALID_TEXT = JSON.stringify(VALID);

/** Reads `text` as the evaluator and `explain` do; fails the property on any exception or raw control character. */
function readAndPrint(text: string): RollbackDecision | null {
  const decision = parseDecision(text);
  if (decision !== null) {
    const printed = explainDecision(decision);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no raw control character may reach the terminal
    expect(printed).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  }
  return decision;
}

describe('fuzz: decision-record reader', () => {
  it('reads the record the controller writes, NaN figures included', () => {
    const read = readAndPrint(VALID_TEXT);
    expect(read).toMatchObject({ reason: VALID.reason, by: 'demo-v1-0', configHash: '5f0c2a9d41b7e613' });
    expect(read!.checks[1]!.observed).toBeNaN();
  });

  it('random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400, unit: 'binary' }), (text) => {
        readAndPrint(text);
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('random JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        readAndPrint(JSON.stringify(value));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('the valid record with one field replaced by a random value, at any depth', () => {
    const paths: string[][] = [];
    const walk = (v: unknown, path: string[]): void => {
      if (path.length > 0) paths.push(path);
      if (v !== null && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...path, k]);
    };
    walk(VALID, []);
    const anything = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.string({ maxLength: 50, unit: 'binary' }),
      fc.constantFrom(null, -1, 1e308, '', [], {}),
    );
    fc.assert(
      fc.property(fc.constantFrom(...paths), anything, (path, value) => {
        const copy = JSON.parse(VALID_TEXT) as Record<string, unknown>;
        let at: Record<string, unknown> = copy;
        for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
        at[path[path.length - 1]!] = value;
        readAndPrint(JSON.stringify(copy));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('the valid record truncated, or with one character changed', () => {
    fc.assert(
      fc.property(fc.nat(VALID_TEXT.length), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' }), (at, c) => {
        readAndPrint(VALID_TEXT.slice(0, at));
        readAndPrint(VALID_TEXT.slice(0, at) + c + VALID_TEXT.slice(at + 1));
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('refuses a record longer than the limit, and caps every text it keeps', () => {
    expect(parseDecision(JSON.stringify({ ...VALID, reason: 'x'.repeat(MAX_DECISION_BYTES) }))).toBeNull();
    expect(parseDecision(JSON.stringify({ ...VALID, by: 'x'.repeat(5000) }))).toBeNull();
    expect(parseDecision(JSON.stringify({ state: 'rolled_back', atMs: 1, reason: 'x' }))).toBeNull();
  });

  it('stores any decision this sidecar makes so that it reads back as a decision (texts cut, evidence dropped to fit)', () => {
    fc.assert(
      fc.property(fc.nat(20_000), fc.nat(40), fc.nat(3000), (reasonLength, checks, ruleLength) => {
        const check = {
          ...VALID.checks[0]!,
          reason: 'r'.repeat(reasonLength),
          evidence: { ...VALID.checks[0]!.evidence!, rule: 'x'.repeat(ruleLength) },
        };
        const decision = { ...VALID, reason: 'y'.repeat(reasonLength), checks: Array.from({ length: checks }, () => check) };
        const read = parseDecision(storedDecision(decision));
        expect(read).not.toBeNull();
        expect(read!.atMs).toBe(VALID.atMs);
      }),
      { seed: SEED, numRuns: 200 },
    );
    expect(storedDecision(VALID)).toBe(VALID_TEXT);
  });
});
