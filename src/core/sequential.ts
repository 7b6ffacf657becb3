/**
 * Sequential change detection: the statistics behind the gate's default checks. Pure functions of counts.
 *
 * Method (README, "How the gate decides"):
 * - **CUSUM of a log-likelihood ratio** (Page 1954, Biometrika 41). Each check turns every slot into binomial counts
 *   (events among trials: canary errors among the slot's errors, canary requests slower than a latency, ...) with a
 *   rate p0 under "the canary is healthy" and p1 under "the canary has regressed by the configured size". The statistic
 *   S = max(0, S + LLR(slot)) keeps accumulating evidence while the canary stays bad, whatever the rolling window's
 *   length, and its reset at zero forgets a long healthy past, so a late regression is not masked. For a given
 *   false-alarm rate no procedure detects a change of the tuned size faster (Lorden 1971, Ann. Math. Stat. 42;
 *   Moustakides 1986, Ann. Stat. 14).
 * - **Threshold from a false-rollback rate** (Siegmund, Sequential Analysis, 1985, ch. II): under H0 the average
 *   run length to a false alarm of a likelihood-ratio CUSUM is about e^h / K0, with K0 the Kullback–Leibler drift of
 *   the statistic under H0 per unit of time. The probability of a false alarm within a horizon T is then about
 *   T * K0 * e^-h, so h = ln(T * K0 * m / falseRollbackRate) keeps m charts together under the rate (Bonferroni
 *   over charts, not over evaluations: one statistic runs the whole rollout). The statistic crosses h by an
 *   overshoot R, and Wald's likelihood-ratio identity makes the false-alarm probability e^-h E1[e^-R] rather than
 *   e^-h (Siegmund's corrected approximation, ch. X): with one trial adding at most a = ln(p1/p0) and the statistic
 *   approaching h in small steps between such jumps, R is about uniform on (0, a), so E1[e^-R] = (1 - e^-a) / a and
 *   h is lowered by ln(a / (1 - e^-a)) (0.56 nats for a = 1.25), never below the single-test bound
 *   ln(m / falseRollbackRate). The statistic moves once per slot, and a slot that brings several events jumps by
 *   several a and overshoots further: the correction is on the cautious side, by up to 1.5 nats at 25-50 % share.
 *   So the detector computes h on a Markov chain of the chart's per-slot law instead (src/core/arl.ts), starting
 *   from this closed form, which stands only where the chain gives no answer. `bench/decision-quality.ts` checks the
 *   thresholds by simulation.
 * - **Warnings** are the same statistic at a lower threshold: under H0 the stationary law of a likelihood-ratio CUSUM
 *   obeys P(S >= x) <= e^-x (Kingman's bound, since E[e^LLR] = 1), so x = ln(m / warnRate) keeps a healthy canary
 *   warning on at most `warnRate` of evaluations.
 */

/**
 * Log-likelihood ratio of binomial counts, ln(P1 / P0) = events ln(p1/p0) + (trials - events) ln((1-p1)/(1-p0)).
 * Counts may be fractional (a floor adds expected counts).
 * @param p0 rate under H0, in (0, 1)
 * @param p1 rate under H1, in (0, 1), p1 != p0
 * @returns the LLR (natural log, unitless); 0 without trials
 */
export function binomialLlr(events: number, trials: number, p0: number, p1: number): number {
  if (!(trials > 0)) return 0;
  return events * Math.log(p1 / p0) + (trials - events) * Math.log((1 - p1) / (1 - p0));
}

/**
 * Kullback–Leibler divergence KL(Bernoulli(p) || Bernoulli(q)) in nats: the expected LLR per trial of H(p) against H(q)
 * when p is true.
 * @param p, q rates in (0, 1)
 */
export function bernoulliKl(p: number, q: number): number {
  const term = (a: number, b: number): number => (a === 0 ? 0 : a * Math.log(a / b));
  return term(p, q) + term(1 - p, 1 - q);
}

/**
 * Expected LLR per trial of H1(p1) against H0(p0) when the true rate is `rate`: positive when the statistic drifts up.
 * The zero of this drift is the rate at which evidence neither accumulates nor decays.
 */
export function llrDrift(rate: number, p0: number, p1: number): number {
  return rate * Math.log(p1 / p0) + (1 - rate) * Math.log((1 - p1) / (1 - p0));
}

/** The rate at which {@link llrDrift} is zero, in (p0, p1) (or (p1, p0)): the CUSUM's break-even rate. */
export function zeroDriftRate(p0: number, p1: number): number {
  const a = Math.log((1 - p0) / (1 - p1));
  return a / (Math.log(p1 / p0) + a);
}

/** One CUSUM step: max(0, statistic + llr). NaN increments leave the statistic unchanged. */
export function cusumStep(statistic: number, llr: number): number {
  return Number.isFinite(llr) ? Math.max(0, statistic + llr) : statistic;
}

/**
 * The largest log-likelihood ratio one trial adds, nats (>= 0): ln(p1/p0) for an event when H1 is a rise, ln((1-p1)/(1-p0))
 * for a non-event when H1 is a fall.
 */
export function largestStep(p0: number, p1: number): number {
  return Math.max(0, Math.log(p1 / p0), Math.log((1 - p1) / (1 - p0)));
}

/**
 * Siegmund's overshoot correction for steps of at most `step` nats (module doc): ln(a / (1 - e^-a)), about a/2 for
 * small a; 0 for no step.
 * @param step nats, >= 0
 * @returns nats, >= 0
 */
export function overshootCorrection(step: number): number {
  return step > 1e-9 && Number.isFinite(step) ? Math.log(step / -Math.expm1(-step)) : 0;
}

/**
 * Siegmund's closed form of the CUSUM threshold that keeps false alarms under `falseRollbackRate` over `horizonS`
 * (the start of src/core/arl.ts's search; Siegmund's approximation with
 * the overshoot correction, see the module doc): h = max(ln(m / rate), ln(max(1, horizonS x driftH0PerS) x m / rate)
 * - overshootCorrection(step)), m the charts sharing the rate.
 * @param falseRollbackRate 0..1, for all charts together
 * @param horizonS the rollout length the rate covers, s
 * @param driftH0PerS KL(H0 || H1) per trial x trials per second: how fast the statistic falls under H0, nats/s
 * @param charts statistics that share the rate
 * @param step the largest LLR of one trial, nats ({@link largestStep}; 0: no correction)
 * @returns h in nats, > 0
 */
export function failThreshold(falseRollbackRate: number, horizonS: number, driftH0PerS: number, charts: number, step = 0): number {
  const opportunities = Math.max(1, horizonS * (Number.isFinite(driftH0PerS) ? driftH0PerS : 0));
  const single = Math.log(Math.max(1, charts) / falseRollbackRate);
  return Math.max(single, single + Math.log(opportunities) - overshootCorrection(step));
}

/**
 * Lundberg's exponent of a chart's LLR when events come at `rate` (not p0): the θ > 0 with
 * E[e^(θ LLR)] = rate (p1/p0)^θ + (1 - rate) ((1-p1)/(1-p0))^θ = 1 per trial. It exists while the chart drifts down
 * (`rate` on H0's side of the break-even, {@link zeroDriftRate}); it is 1 at p0, and larger the further `rate` lies
 * beyond p0 from the break-even. e^(θ S) is then a martingale
 * whatever the trials per slot, so from any slot the statistic ever climbs h with probability at most e^(-θ h)
 * (Lundberg's inequality; Asmussen, Ruin Probabilities, 2010, ch. IV), and a chart over T slots alarms with
 * probability at most T e^(-θ h).
 * @param rate 0..1, the rate events really come at
 * @returns θ > 0; Infinity when no event can come (`rate` 0 with p1 > p0); 0 when the chart does not drift down
 */
export function lundbergExponent(rate: number, p0: number, p1: number): number {
  const u = Math.log(p1 / p0);
  const v = Math.log((1 - p1) / (1 - p0));
  if (!(llrDrift(rate, p0, p1) < 0)) return 0;
  const [up, down] = u > 0 ? [u, v] : [v, u];
  const pUp = u > 0 ? rate : 1 - rate;
  if (pUp <= 0) return Number.POSITIVE_INFINITY;
  // ln E[e^(θ LLR)] in a form that cannot overflow; it is convex, 0 at θ = 0, falling first, then rising.
  const logMgf = (theta: number): number => {
    const a = Math.log(pUp) + theta * up;
    const b = Math.log1p(-pUp) + theta * down;
    const top = Math.max(a, b);
    return top + Math.log(Math.exp(a - top) + Math.exp(b - top));
  };
  let high = 1;
  while (logMgf(high) < 0 && high < 1e6) high *= 2;
  let low = high / 2;
  if (logMgf(low) >= 0) low = 0;
  for (let i = 0; i < 60; i++) {
    const mid = (low + high) / 2;
    if (logMgf(mid) < 0) low = mid;
    else high = mid;
  }
  return high;
}

/**
 * The warning threshold: the statistic of a healthy canary is at or above it on at most `warnRate` of evaluations,
 * all charts together (Kingman's bound, module doc): ln(charts / warnRate).
 * @param warnRate 0..1
 * @returns nats, > 0
 */
export function warnThreshold(warnRate: number, charts: number): number {
  return Math.log(Math.max(1, charts) / warnRate);
}

/**
 * The canary's share of the errors of both versions when the canary's error rate is `ratio` times the baseline's:
 * r n_c / (r n_c + n_b). Conditional on the errors of a slot, the canary's errors are binomial with this share (the
 * conditional test of two Poisson rates; Lehmann & Romano, Testing Statistical Hypotheses, 2005, §4.5), so the test
 * needs no estimate of the baseline's rate and is exact when the baseline has no errors.
 * @param ratio canary rate / baseline rate, > 0
 * @returns 0..1; NaN when both request counts are 0
 */
export function conditionalShare(ratio: number, canaryRequests: number, baselineRequests: number): number {
  const weighted = ratio * canaryRequests;
  return weighted / (weighted + baselineRequests);
}

/**
 * Seconds the statistic needs to climb `distance` nats at `driftPerS`, or null when it does not climb.
 * @returns s, >= 0, or null
 */
export function secondsToClimb(distance: number, driftPerS: number): number | null {
  if (!(distance > 0)) return 0;
  return driftPerS > 0 ? distance / driftPerS : null;
}
