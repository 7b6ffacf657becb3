/**
 * The sequential statistics (src/core/sequential.ts): the LLR and its drift, the thresholds and the bounds they rest
 * on, checked against closed forms and against seeded simulations.
 */
import { describe, expect, it } from 'vitest';
import {
  bernoulliKl,
  binomialLlr,
  conditionalShare,
  cusumStep,
  failThreshold,
  largestStep,
  llrDrift,
  lundbergExponent,
  overshootCorrection,
  secondsToClimb,
  warnThreshold,
  zeroDriftRate,
} from '../../src/core/sequential.ts';
import { mulberry32 as prng } from '../helpers/prng.ts';

const binomial = (n: number, p: number, random: () => number): number => {
  let x = 0;
  for (let i = 0; i < n; i++) if (random() < p) x++;
  return x;
};

/**
 * The share of `runs` healthy streams (n trials per slot at p0, CUSUM tuned for p1) whose statistic reaches `h` within
 * `slots` slots.
 */
function falseAlarmShare(o: { p0: number; p1: number; n: number; slots: number; runs: number; h: number; random: () => number }): number {
  let alarms = 0;
  for (let r = 0; r < o.runs; r++) {
    let s = 0;
    for (let t = 0; t < o.slots && s < o.h; t++) s = cusumStep(s, binomialLlr(binomial(o.n, o.p0, o.random), o.n, o.p0, o.p1));
    if (s >= o.h) alarms++;
  }
  return alarms / o.runs;
}

describe('binomialLlr', () => {
  it.each([
    [1, 1, 0.05, 0.1, Math.log(2)],
    [0, 1, 0.05, 0.1, Math.log(0.9 / 0.95)],
    [3, 10, 0.1, 0.3, 3 * Math.log(3) + 7 * Math.log(0.7 / 0.9)],
    [0, 0, 0.1, 0.3, 0],
    [2.5, 4.5, 0.2, 0.4, 2.5 * Math.log(2) + 2 * Math.log(0.6 / 0.8)],
  ])('%d events of %d at p0 %d, p1 %d', (events, trials, p0, p1, expected) => {
    expect(binomialLlr(events, trials, p0, p1)).toBeCloseTo(expected, 12);
  });
});

describe('drift', () => {
  it('is -KL(p0 || p1) under H0 and +KL(p1 || p0) under H1', () => {
    expect(llrDrift(0.05, 0.05, 0.15)).toBeCloseTo(-bernoulliKl(0.05, 0.15), 12);
    expect(llrDrift(0.15, 0.05, 0.15)).toBeCloseTo(bernoulliKl(0.15, 0.05), 12);
  });

  it.each([
    [0.05, 0.166],
    [0.005, 0.05],
    [0.5, 0.75],
  ])('is zero at the break-even rate between %d and %d', (p0, p1) => {
    const r = zeroDriftRate(p0, p1);
    expect(r).toBeGreaterThan(p0);
    expect(r).toBeLessThan(p1);
    expect(llrDrift(r, p0, p1)).toBeCloseTo(0, 12);
  });
});

describe('cusumStep', () => {
  it.each([
    [0, 2, 2],
    [1, -3, 0],
    [5, -1, 4],
    [3, Number.NaN, 3],
  ])('%d + %d -> %d', (s, llr, next) => expect(cusumStep(s, llr)).toBe(next));
});

describe('thresholds', () => {
  it('fail: ln(horizon x drift x checks / rate), never below ln(checks / rate)', () => {
    expect(failThreshold(0.01, 7200, 0.05, 4)).toBeCloseTo(Math.log((7200 * 0.05 * 4) / 0.01), 12);
    expect(failThreshold(0.01, 7200, 0, 4)).toBeCloseTo(Math.log(4 / 0.01), 12);
    expect(failThreshold(0.01, 7200, Number.NaN, 1)).toBeCloseTo(Math.log(100), 12);
  });

  it('warn: ln(charts / warnRate)', () => expect(warnThreshold(0.02, 4)).toBeCloseTo(Math.log(200), 12));

  it.each([
    // step a, ln(a / (1 - e^-a)): about a/2 for small steps, 0 without one
    [0, 0],
    [Number.NaN, 0],
    [0.01, 0.005],
    [Math.log(4), Math.log(Math.log(4) / 0.75)],
    [1.25, 0.5607],
    [5, Math.log(5 / (1 - Math.exp(-5)))],
  ])('overshoot correction for steps of %d nats: %d', (step, rho) => expect(overshootCorrection(step)).toBeCloseTo(rho, 3));

  it.each([
    // p0, p1, largest one-trial LLR
    [0.05, 0.2, Math.log(4)],
    [0.05, 0.025, Math.log(0.975 / 0.95)],
    [0.3, 0.3, 0],
  ])('largest step of H1 %d -> %d: %d nats', (p0, p1, step) => expect(largestStep(p0, p1)).toBeCloseTo(step, 12));

  it('fail with a step: lowered by the overshoot correction, never below the single-test bound ln(charts / rate)', () => {
    const plain = failThreshold(0.01, 7200, 0.05, 5);
    expect(failThreshold(0.01, 7200, 0.05, 5, 1.25)).toBeCloseTo(plain - overshootCorrection(1.25), 12);
    expect(failThreshold(0.01, 1, 0.05, 5, 1.25)).toBeCloseTo(Math.log(5 / 0.01), 12);
  });

  it('the overshoot correction keeps false alarms under the rate: steps of ln 8 from rare events (checked by simulation)', () => {
    // Rare events with large jumps: the overshoot is large, so the uncorrected threshold is far too cautious and the
    // corrected one must still hold the rate.
    const random = prng(19);
    const [p0, p1, n, slots, runs] = [0.01, 0.08, 20, 1440, 600];
    const drift = bernoulliKl(p0, p1) * n;
    const corrected = failThreshold(0.05, slots, drift, 1, largestStep(p0, p1));
    expect(corrected).toBeLessThan(failThreshold(0.05, slots, drift, 1) - 0.8);
    const share = falseAlarmShare({ p0, p1, n, slots, runs, h: corrected, random });
    expect(share).toBeLessThan(0.06);
    expect(share).toBeGreaterThan(0.005);
  });

  it("keeps a healthy stream's false alarms near the rate over the horizon (Siegmund, checked by simulation)", () => {
    // One check, 5 canary requests per slot with 0.5 % errors (p0), tuned against 5 % (p1), 1440 slots.
    const random = prng(7);
    const [p0, p1, n, slots, runs] = [0.02, 0.08, 25, 1440, 400];
    const h = failThreshold(0.05, slots, bernoulliKl(p0, p1) * n, 1);
    const share = falseAlarmShare({ p0, p1, n, slots, runs, h, random });
    // The approximation aims at 5 %; the simulation must land near it, neither far above nor absurdly below.
    expect(share).toBeLessThan(0.09);
    expect(share).toBeGreaterThan(0.005);
  });

  it("bounds a healthy statistic's share of time above the warning threshold by e^-x (Kingman)", () => {
    const random = prng(11);
    const [p0, p1, n] = [0.05, 0.166, 20];
    const x = warnThreshold(0.05, 1); // ln 20 = 3.0
    let s = 0;
    let above = 0;
    const steps = 50_000;
    for (let t = 0; t < steps; t++) {
      s = cusumStep(s, binomialLlr(binomial(n, p0, random), n, p0, p1));
      if (s >= x) above++;
    }
    expect(above / steps).toBeLessThanOrEqual(0.05);
  });
});

describe('conditionalShare', () => {
  it.each([
    [1, 5, 95, 0.05],
    [4, 5, 95, 20 / 115],
    [2, 50, 50, 2 / 3],
  ])('ratio %d, canary %d and baseline %d requests -> %d', (ratio, nc, nb, share) => {
    expect(conditionalShare(ratio, nc, nb)).toBeCloseTo(share, 12);
  });
});

describe('secondsToClimb', () => {
  it.each([
    [10, 2, 5],
    [0, 2, 0],
    [-1, 0, 0],
    [10, 0, null],
    [10, -1, null],
  ])('%d nats at %d per s -> %s s', (distance, drift, expected) => expect(secondsToClimb(distance, drift)).toBe(expected));
});

describe('lundbergExponent', () => {
  const mgf = (theta: number, rate: number, p0: number, p1: number): number =>
    rate * (p1 / p0) ** theta + (1 - rate) * ((1 - p1) / (1 - p0)) ** theta;
  it.each([
    // [rate, p0, p1]: the absolute error chart (5 % line) at healthy baselines, the relative error chart, a drop
    [0.005, 0.05 / Math.SQRT2, 0.05 * Math.SQRT2],
    [0.03, 0.05 / Math.SQRT2, 0.05 * Math.SQRT2],
    [0.01, 0.05, 0.174],
    [0.06, 0.05, 0.025],
  ])('at rate %d (p0 %d, p1 %d): θ > 1 with E[e^(θ LLR)] = 1', (rate, p0, p1) => {
    const theta = lundbergExponent(rate, p0, p1);
    expect(theta).toBeGreaterThan(1);
    expect(mgf(theta, rate, p0, p1)).toBeCloseTo(1, 9);
  });

  it('is 1 at p0 (the LLR of H1 against a true H0), 0 at or above the break-even, Infinity when no event can come', () => {
    expect(lundbergExponent(0.05, 0.05, 0.174)).toBeCloseTo(1, 9);
    expect(lundbergExponent(zeroDriftRate(0.05, 0.174) + 1e-6, 0.05, 0.174)).toBe(0);
    expect(lundbergExponent(0.5, 0.05, 0.174)).toBe(0);
    expect(lundbergExponent(0, 0.05, 0.174)).toBe(Number.POSITIVE_INFINITY);
  });

  it("bounds a walk's chance of ever climbing h from 0 by e^(-θ h), which falls at the rate θ (Cramér)", () => {
    // The absolute chart of a 10 % line (H0 7.1 %, H1 14.1 %) on a canary at 5 %, 40 trials a slot: the walk's
    // maximum before it drifts away, over 4000 walks.
    const [rate, p0, p1, n, runs] = [0.05, 0.1 / Math.SQRT2, 0.1 * Math.SQRT2, 40, 4000];
    const theta = lundbergExponent(rate, p0, p1);
    const random = prng(23);
    const maxima: number[] = [];
    for (let r = 0; r < runs; r++) {
      let [s, max] = [0, 0];
      while (s > -12 && max < 12) {
        s += binomialLlr(binomial(n, rate, random), n, p0, p1);
        max = Math.max(max, s);
      }
      maxima.push(max);
    }
    const share = (h: number): number => maxima.filter((m) => m >= h).length / runs;
    // h where the bound is 30 % and 3 %: the shares stay under it, and their ratio gives back θ (the constant cancels).
    const [low, high] = [Math.log(1 / 0.3) / theta, Math.log(1 / 0.03) / theta];
    expect(share(low)).toBeLessThanOrEqual(0.3);
    expect(share(high)).toBeLessThanOrEqual(0.03);
    const fitted = Math.log(share(low) / share(high)) / (high - low);
    expect(fitted / theta).toBeGreaterThan(0.75);
    expect(fitted / theta).toBeLessThan(1.25);
  });
});
