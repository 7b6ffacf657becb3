/**
 * The statistics behind the gate's bounded-error checks. Pure functions of counts; distributions from @stdlib.
 *
 * Method (stated for every check in the README, "How the gate decides"):
 * - **Exact binomial bounds.** A rate's confidence bounds are Clopper–Pearson's (Clopper & Pearson 1934, Biometrika
 *   26(4)): the lower bound of x successes in n trials at level 1 - alpha is the alpha quantile of Beta(x, n - x + 1).
 *   A check "fails" only when the canary rate's lower bound is above the tolerated rate: under the null hypothesis
 *   (the canary is within tolerance) that happens with probability at most alpha.
 * - **Distribution-free quantile bounds.** An upper bound of a population quantile q from n samples is the order
 *   statistic of rank k = BinomialQuantile(1 - alpha; n, q) + 1 (e.g. Hahn & Meeker, Statistical Intervals, 1991, §5.2):
 *   P(X(k) >= xi_q) >= 1 - alpha, whatever the latency distribution.
 * - **Alpha spending across a rollout (Bonferroni).** The gate evaluates every slot; each check of each evaluation
 *   gets alpha = falseRollbackRate x slot / horizon / checks, so by the union bound the probability that any check of
 *   any evaluation within the horizon fails a healthy canary is at most falseRollbackRate, however the overlapping
 *   windows correlate. Past the horizon the bound grows linearly with time.
 */
import betaQuantile from '@stdlib/stats-base-dists-beta-quantile';
import binomialQuantile from '@stdlib/stats-base-dists-binomial-quantile';
import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf';

/**
 * Significance level of one check in one evaluation (Bonferroni spending, see the module doc).
 * @param falseRollbackRate tolerated probability of rolling back a healthy canary over the horizon, 0..1
 * @param slotMs evaluation period, ms
 * @param horizonMs rollout length the guarantee covers, ms
 * @param checks statistical checks per evaluation
 * @returns alpha in (0, 1]
 */
export function evaluationAlpha(falseRollbackRate: number, slotMs: number, horizonMs: number, checks: number): number {
  const evaluations = Math.max(1, Math.ceil(horizonMs / slotMs));
  return Math.min(1, falseRollbackRate / evaluations / checks);
}

/**
 * Clopper–Pearson lower bound of a rate at level 1 - alpha.
 * @returns 0..1; 0 when `successes` is 0; NaN when `trials` is 0
 */
export function lowerRateBound(successes: number, trials: number, alpha: number): number {
  if (!(trials > 0)) return Number.NaN;
  if (successes <= 0) return 0;
  return betaQuantile(alpha, successes, trials - successes + 1);
}

/**
 * Clopper–Pearson upper bound of a rate at level 1 - alpha.
 * @returns 0..1; 1 when every trial succeeded; NaN when `trials` is 0
 */
export function upperRateBound(successes: number, trials: number, alpha: number): number {
  if (!(trials > 0)) return Number.NaN;
  if (successes >= trials) return 1;
  return betaQuantile(1 - alpha, successes + 1, trials - successes);
}

/** Result of testing "the canary's rate exceeds `tolerated`". */
export interface RateTest {
  /** True when the lower bound is above the tolerated rate: a supported breach. */
  readonly significant: boolean;
  /** Clopper–Pearson lower bound of the rate, 0..1 (NaN without trials). */
  readonly lowerBound: number;
  /**
   * Further trials the test needs at the observed rate to become significant: 0 when it is, null when the observed
   * rate is not above `tolerated` (more data at that rate would never make it a breach).
   */
  readonly neededTrials: number | null;
}

/**
 * One-sided exact test of H0: rate <= tolerated, against H1: rate > tolerated, at level alpha.
 * @param successes events counted (errors, or requests slower than a threshold)
 * @param trials requests
 * @param tolerated rate under H0, 0..1
 */
export function testRateAbove(successes: number, trials: number, tolerated: number, alpha: number): RateTest {
  const lowerBound = lowerRateBound(successes, trials, alpha);
  if (lowerBound > tolerated) return { significant: true, lowerBound, neededTrials: 0 };
  const observed = trials > 0 ? successes / trials : Number.NaN;
  if (!(observed > tolerated)) return { significant: false, lowerBound, neededTrials: null };
  // Smallest m >= trials at which the same observed rate would be significant: doubling, then bisection.
  const significantAt = (m: number): boolean => lowerRateBound(Math.round(observed * m), m, alpha) > tolerated;
  let high = Math.max(trials, 1) * 2;
  while (!significantAt(high)) {
    high *= 2;
    if (high > 1e12) return { significant: false, lowerBound, neededTrials: null };
  }
  let low = trials;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (significantAt(mid)) high = mid;
    else low = mid;
  }
  return { significant: false, lowerBound, neededTrials: high - trials };
}

/**
 * The quantile level whose order statistic is a distribution-free upper confidence bound of the q quantile.
 * @param n samples
 * @param q quantile, 0..1 (0.95 for p95)
 * @returns a level in (q, 1], or NaN when n samples cannot bound the quantile at this alpha (read the sample at
 *   that level, e.g. `quantileUs(level)`, for the bound)
 */
export function quantileUpperLevel(n: number, q: number, alpha: number): number {
  if (!(n > 0)) return Number.NaN;
  const rank = binomialQuantile(1 - alpha, n, q) + 1;
  return rank > n ? Number.NaN : rank / n;
}

/**
 * Share of a distribution strictly above `thresholdUs`, read from its quantile function by bisection (40 steps:
 * far finer than HDR's 3 significant digits).
 * @param quantileUs the window's quantile function, µs (monotonic in q)
 * @returns 0..1
 */
export function shareAbove(quantileUs: (q: number) => number, thresholdUs: number): number {
  if (!(quantileUs(1) > thresholdUs)) return 0;
  if (quantileUs(0) > thresholdUs) return 1;
  let low = 0;
  let high = 1;
  for (let i = 0; i < 40; i++) {
    const mid = (low + high) / 2;
    if (quantileUs(mid) > thresholdUs) high = mid;
    else low = mid;
  }
  return 1 - high;
}

/**
 * Pearson's chi-square goodness-of-fit p-value of an observed split against an expected share (1 degree of
 * freedom): the sample-ratio-mismatch test of A/B testing (Kohavi et al., Trustworthy Online Controlled Experiments,
 * 2020, ch. 21).
 * @param canary canary requests observed
 * @param total requests of both versions
 * @param expectedShare the router's canary share, 0..1 (exclusive)
 * @returns p-value 0..1; NaN when total is 0 or the share is 0 or 1
 */
export function sampleRatioPValue(canary: number, total: number, expectedShare: number): number {
  if (!(total > 0) || !(expectedShare > 0 && expectedShare < 1)) return Number.NaN;
  const expectedCanary = total * expectedShare;
  const expectedBaseline = total - expectedCanary;
  const baseline = total - canary;
  const statistic = (canary - expectedCanary) ** 2 / expectedCanary + (baseline - expectedBaseline) ** 2 / expectedBaseline;
  return 1 - chisquareCdf(statistic, 1);
}
