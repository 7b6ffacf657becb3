/**
 * The run-length chain (src/core/arl.ts): the per-slot law it is built on, the growth of the ARL with h, and the
 * thresholds it gives, checked against seeded simulations of the same Poisson streams and against Siegmund's closed
 * form, which it must beat without overspending the rate.
 */
import { describe, expect, it } from 'vitest';
import {
  averageRunLength,
  calibratedThreshold,
  chainThreshold,
  incrementLaw,
  MAX_TRIALS_PER_SLOT,
  type SlotLaw,
} from '../../src/core/arl.ts';
import { bernoulliKl, conditionalShare, cusumStep, failThreshold, largestStep } from '../../src/core/sequential.ts';
import { mulberry32 as prng } from '../helpers/prng.ts';

/** Knuth's Poisson sampler: fine for the small means used here. */
const poissonOf =
  (random: () => number) =>
  (mean: number): number => {
    const limit = Math.exp(-mean);
    let k = 0;
    for (let p = random(); p > limit; p *= random()) k++;
    return k;
  };

/** Share of `runs` healthy Poisson streams whose CUSUM reaches h within `slots` slots. */
function simulatedFalseAlarms(law: SlotLaw, h: number, slots: number, runs: number, seed: number): number {
  const poisson = poissonOf(prng(seed));
  const u = Math.log(law.p1 / law.p0);
  const v = Math.log((1 - law.p1) / (1 - law.p0));
  let alarms = 0;
  for (let r = 0; r < runs; r++) {
    let s = 0;
    for (let t = 0; t < slots && s < h; t++)
      s = cusumStep(s, poisson(law.trialsPerSlot * law.p0) * u + poisson(law.trialsPerSlot * (1 - law.p0)) * v);
    if (s >= h) alarms++;
  }
  return alarms / runs;
}

/** The relative error chart at a canary share: p1 for `ratio` x the baseline's errors, 2.5 errors a slot. */
const errorChart = (share: number, ratio: number): SlotLaw => ({
  p0: share,
  p1: conditionalShare(ratio, share, 1 - share),
  trialsPerSlot: 2.5,
});
const closedForm = (law: SlotLaw, slots: number, rate: number): number =>
  failThreshold(rate, slots, bernoulliKl(law.p0, law.p1) * law.trialsPerSlot, 1, largestStep(law.p0, law.p1));

describe('incrementLaw', () => {
  it.each([
    [errorChart(0.05, 8), 0.1],
    [errorChart(0.5, 4), 0.07],
    [{ p0: 0.05, p1: 0.025, trialsPerSlot: 500 }, 0.1], // a throughput drop: events pull the statistic down
    [{ p0: 0.0354, p1: 0.0707, trialsPerSlot: 400 }, 0.09],
  ])('%j on cells of %d nats: all the mass, and the mean LLR a slot', (law, width) => {
    const { minOffset, probs } = incrementLaw(law, width);
    let mass = 0;
    let mean = 0;
    probs.forEach((p, k) => {
      mass += p;
      mean += p * (minOffset + k) * width;
    });
    const exact = law.trialsPerSlot * (law.p0 * Math.log(law.p1 / law.p0) + (1 - law.p0) * Math.log((1 - law.p1) / (1 - law.p0)));
    expect(mass).toBeCloseTo(1, 9);
    expect(mean).toBeCloseTo(exact, 6);
    expect(exact).toBeLessThan(0);
  });
});

describe('averageRunLength', () => {
  it('grows about as e^h, the likelihood-ratio CUSUM law that chainThreshold steps by', () => {
    const law = errorChart(0.05, 8);
    const slope = Math.log(averageRunLength(law, 10)) - Math.log(averageRunLength(law, 9));
    expect(slope).toBeGreaterThan(0.9);
    expect(slope).toBeLessThan(1.1);
  });

  it('is about the same on finer cells (the chain has converged)', () => {
    const law = errorChart(0.01, 4);
    const coarse = Math.log(averageRunLength(law, 9, 120));
    const fine = Math.log(averageRunLength(law, 9, 300));
    expect(Math.abs(coarse - fine)).toBeLessThan(0.1);
  });

  it('is Infinity for a chart that cannot climb (H1 = H0: every LLR is 0)', () => {
    expect(averageRunLength({ p0: 0.2, p1: 0.2, trialsPerSlot: 3 }, 5)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('chainThreshold', () => {
  it.each([
    // [share, ratio]: the relative error chart's two tunings at 5 % share, and the first at 25 %.
    [0.05, 8],
    [0.05, 4],
    [0.25, 4],
  ])('holds the rate on simulated healthy streams, below the closed form (share %d, tuned for %d x)', (share, ratio) => {
    const law = errorChart(share, ratio);
    const [slots, rate, runs] = [300, 0.05, 4000];
    const guess = closedForm(law, slots, rate);
    const h = chainThreshold(law, slots, rate, guess);
    expect(h).not.toBeNull();
    // Siegmund's closed form is cautious here: slots of several trials overshoot h by more than one step.
    expect(h!).toBeLessThan(guess);
    const share_ = simulatedFalseAlarms(law, h!, slots, runs, 1000 * share + ratio);
    // 4000 runs at 5 %: a standard error of 0.34 %; four of them either way.
    expect(share_).toBeGreaterThan(rate - 0.014);
    expect(share_).toBeLessThan(rate + 0.014);
  });

  it('never returns less than the floor', () => {
    const law = { p0: 0.5, p1: 2 / 3, trialsPerSlot: 2500 };
    expect(chainThreshold(law, 1440, 0.002, 18, Math.log(500))).toBeCloseTo(Math.log(500), 9);
  });

  it('returns only an h whose run length it solved and found long enough', () => {
    const law = errorChart(0.05, 4);
    for (const guess of [4, 9, 11, 16]) {
      const h = chainThreshold(law, 1440, 0.002, guess)!;
      expect(Math.log(averageRunLength(law, h))).toBeGreaterThanOrEqual(Math.log(1440 / 0.002));
      expect(Math.log(averageRunLength(law, h))).toBeLessThan(Math.log(1440 / 0.002) + 0.1);
    }
  });
});

describe('calibratedThreshold', () => {
  it('gives one threshold to rates on the same grid step, whatever the search starts from', () => {
    const a = calibratedThreshold(errorChart(0.05, 8), 1440, 0.002);
    const b = calibratedThreshold({ ...errorChart(0.05, 8), trialsPerSlot: 2.5 * 1.001 }, 1440, 0.002);
    expect(a).not.toBeNull();
    expect(b).toBe(a);
  });

  it('asks the chain for less than the share (the grid margin), so the threshold is above the exact one', () => {
    const law = errorChart(0.05, 8);
    const exact = chainThreshold(law, 1440, 0.002, closedForm(law, 1440, 0.002))!;
    const h = calibratedThreshold(law, 1440, 0.002)!;
    expect(h).toBeGreaterThan(exact);
    expect(h).toBeLessThan(exact + 0.2);
  });

  it('gives nothing for a degenerate law, or above the trials per slot it solves', () => {
    expect(calibratedThreshold({ p0: 0.05, p1: 0.05, trialsPerSlot: 2.5 }, 1440, 0.002)).toBeNull();
    expect(calibratedThreshold({ p0: 0.05, p1: 0.3, trialsPerSlot: 0 }, 1440, 0.002)).toBeNull();
    expect(calibratedThreshold({ p0: Number.NaN, p1: 0.3, trialsPerSlot: 1 }, 1440, 0.002)).toBeNull();
    expect(calibratedThreshold({ p0: 0.05, p1: 0.3, trialsPerSlot: MAX_TRIALS_PER_SLOT * 1.2 }, 1440, 0.002)).toBeNull();
  });
});
