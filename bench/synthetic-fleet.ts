/**
 * A synthetic fleet for the decision-quality benchmark: per 5 s slot, the request and error counts of the baseline
 * and the canary, and what the judge reads of them (per-slot {@link SlotCounts} for the sequential detector, rolling
 * {@link WindowSnapshot}s for the judge), without recording a single latency. Seeded, so a rollout is reproducible.
 *
 * Model (all draws from one seeded MT19937 stream per rollout; `countAbove` draws from a second stream per replay):
 * - Traffic: per slot and version, requests ~ Poisson(totalRps x share x slot), share = canaryShare for the canary and
 *   1 - canaryShare for the baseline; errors ~ Binomial(requests, rate) with the version's true error rate.
 * - Latency: each version's true law is lognormal (median `latencyMedianMs`, sigma `latencySigma`); a latency
 *   regression multiplies the canary's latencies by `latencyFactor` (its median moves, sigma stays), so each of its
 *   quantiles moves by the same factor. From the regression's slot on the canary's errors use
 *   `baselineErrorRatio x errorFactor`.
 * - A slot's `countAbove(us)` is a Binomial(requests, 1 - F(us)) draw with F the slot's true CDF: what an HDR histogram
 *   of those requests would count, up to its 3 significant digits. One draw per distinct threshold per slot,
 *   memoized, so that the detector and the judge see one value. Counts at different thresholds are drawn
 *   independently (not nested): no check compares two thresholds of one slot.
 * - A window (the last `windowSlots` slots) sums the slots' counts. Its `quantileUs(q)` is the empirical quantile of
 *   its n requests: F^-1(u_q) with u_q the q-th uniform order statistic, Beta(k, n - k + 1), k = ceil(q n), in its
 *   normal approximation u_q = q + z sqrt(q (1 - q) / (n + 2)), clamped to [1/(n+1), n/(n+1)] (the expected
 *   minimum and maximum), which keeps it monotone in q. One standard normal z per evaluation and version, shared by
 *   every q. z is the request-weighted sum of one standard normal shock per slot, z = sum(sqrt(n_i) e_i) /
 *   sqrt(sum n_i) over the window's slots: N(0, 1) at every evaluation, and correlated between overlapping windows as
 *   an empirical quantile is (Bahadur's representation: the quantile's error is a sum over the window's requests), so
 *   a rule that needs consecutive breaches meets the persistence a real window has. F of a window that straddles the
 *   regression is the request-weighted mixture of the two laws (inverted by bisection).
 * - Cost: a 2 h rollout of 1440 slots draws 4 Poisson, 2 binomial and 2 normal numbers per slot plus one binomial
 *   per threshold asked; nothing is recorded.
 */
import binomialFactory from '@stdlib/random-base-binomial';
import poissonFactory from '@stdlib/random-base-poisson';
import randu from '@stdlib/random-base-randu';
import normalCdf from '@stdlib/stats-base-dists-normal-cdf';
import normalQuantile from '@stdlib/stats-base-dists-normal-quantile';
import type { SlotCounts, WindowSnapshot } from '../src/core/window.ts';

/** A change of the canary from a slot on. Factors multiply the healthy figures (1: unchanged). */
export interface Regression {
  /** First regressed slot (0-based from the rollout's start). */
  readonly atSlot: number;
  /** Multiplier of the canary's error rate. */
  readonly errorFactor: number;
  /** Multiplier of every canary latency (its p95 moves by this factor). */
  readonly latencyFactor: number;
}

export interface FleetParams {
  /** Requests per second of both versions together. */
  readonly totalRps: number;
  /** The canary's share of the requests, 0..1 (exclusive). */
  readonly canaryShare: number;
  readonly slotMs: number;
  /** Slots in a rolling window. */
  readonly windowSlots: number;
  /** Slots in a rollout (1440 = 2 h of 5 s slots). */
  readonly horizonSlots: number;
  /** Both versions' true error rate while healthy, 0..1. */
  readonly baselineErrorRatio: number;
  /** Both versions' true median latency while healthy, ms. */
  readonly latencyMedianMs: number;
  /** Sigma of ln(latency). */
  readonly latencySigma: number;
  /** The canary's regression, or null for an A/A rollout. */
  readonly regression: Regression | null;
}

export const DEFAULT_FLEET: FleetParams = {
  totalRps: 100,
  canaryShare: 0.05,
  slotMs: 5000,
  windowSlots: 12,
  horizonSlots: 1440,
  baselineErrorRatio: 0.005,
  latencyMedianMs: 50,
  latencySigma: 0.6,
  regression: null,
};

/** A lognormal latency law: ln(latency µs) ~ N(mu, sigma). */
export interface LatencyLaw {
  readonly mu: number;
  readonly sigma: number;
}

/** P(latency <= us). */
export const lawCdf = (law: LatencyLaw, us: number): number => (us > 0 ? normalCdf(Math.log(us), law.mu, law.sigma) : 0);
/** The latency at probability u in (0, 1), µs. */
export const lawQuantile = (law: LatencyLaw, u: number): number => Math.exp(law.mu + law.sigma * normalQuantile(u, 0, 1));

/** The healthy law and the canary's law after the regression. */
export function lawsOf(p: FleetParams): { healthy: LatencyLaw; regressed: LatencyLaw } {
  const healthy = { mu: Math.log(p.latencyMedianMs * 1000), sigma: p.latencySigma };
  const factor = p.regression?.latencyFactor ?? 1;
  return { healthy, regressed: { mu: healthy.mu + Math.log(factor), sigma: p.latencySigma } };
}

export type Version = 'baseline' | 'canary';

/** One version's draws, one entry per slot. */
export interface VersionStream {
  readonly requests: Int32Array;
  readonly errors: Int32Array;
  /** Standard normal shock of the slot's empirical quantiles (module doc). */
  readonly shocks: Float64Array;
}

/** Every draw of one rollout except `countAbove`'s, which depend on the thresholds a contender asks for. */
export interface Stream {
  readonly params: FleetParams;
  readonly slots: number;
  readonly baseline: VersionStream;
  readonly canary: VersionStream;
}

/** A uniform [0, 1) generator seeded with `seed` (a uint32 or a list of them). */
export const uniformOf = (seed: number | readonly number[]): (() => number) => randu.factory({ seed: seed as number });

/**
 * Binomial(n, p) draws from `uniform`: @stdlib's sampler when n min(p, 1 - p) >= 10, else inversion (BINV,
 * Kachitvichyanukul & Schmeiser 1988, Commun. ACM 31(2)), since @stdlib sums n Bernoulli draws there, which makes
 * the baseline's errors (n ~ 500, p = 0.005) cost 500 uniforms a slot. Handles the cases @stdlib rejects (n = 0, p
 * outside (0, 1)).
 */
export function binomialOf(uniform: () => number): (n: number, p: number) => number {
  const draw = binomialFactory.factory({ prng: uniform });
  const inversion = (n: number, p: number): number => {
    const s = p / (1 - p);
    const a = (n + 1) * s;
    for (;;) {
      let r = (1 - p) ** n;
      let u = uniform();
      let x = 0;
      while (u > r && x <= n) {
        u -= r;
        x++;
        r *= a / x - s;
      }
      if (x <= n) return x; // else rounding ran past n: draw again
    }
  };
  return (n, p) => {
    if (n <= 0 || p <= 0) return 0;
    if (p >= 1) return n;
    if (n * Math.min(p, 1 - p) >= 10) return draw(n, p);
    return p <= 0.5 ? inversion(n, p) : n - inversion(n, 1 - p);
  };
}

/**
 * The draws of one rollout of `slots` slots.
 * @param seed any uint32: the same seed gives the same stream
 */
export function generateStream(params: FleetParams, seed: number, slots = params.horizonSlots): Stream {
  const uniform = uniformOf([seed, 0x5eed]);
  const poisson = poissonFactory.factory({ prng: uniform });
  const binomial = binomialOf(uniform);
  const normal = (): number => normalQuantile(uniform() || Number.MIN_VALUE, 0, 1);
  const slotS = params.slotMs / 1000;
  const version = (share: number, rateAt: (slot: number) => number): VersionStream => {
    const requests = new Int32Array(slots);
    const errors = new Int32Array(slots);
    const shocks = new Float64Array(slots);
    const mean = params.totalRps * share * slotS;
    for (let i = 0; i < slots; i++) {
      requests[i] = mean > 0 ? poisson(mean) : 0;
      errors[i] = binomial(requests[i]!, rateAt(i));
      shocks[i] = normal();
    }
    return { requests, errors, shocks };
  };
  const healthy = params.baselineErrorRatio;
  const r = params.regression;
  const baseline = version(1 - params.canaryShare, () => healthy);
  const canary = version(params.canaryShare, (i) => (r !== null && i >= r.atSlot ? Math.min(1, healthy * r.errorFactor) : healthy));
  return { params, slots, baseline, canary };
}

/**
 * One replay of a stream as the judge sees it: slot counts and window snapshots. Each contender replays the same
 * stream in its own SyntheticRun, so the counts above its thresholds come from its own seeded draws.
 */
export class SyntheticRun {
  readonly stream: Stream;
  private readonly laws: { healthy: LatencyLaw; regressed: LatencyLaw };
  private readonly binomial: (n: number, p: number) => number;
  private readonly cache: Map<number, { baseline: SlotCounts | null; canary: SlotCounts | null }> = new Map();

  /** @param seed of the `countAbove` draws (e.g. the stream's seed and the contender's index) */
  constructor(stream: Stream, seed: number | readonly number[]) {
    this.stream = stream;
    this.laws = lawsOf(stream.params);
    this.binomial = binomialOf(uniformOf(seed));
  }

  /** The true latency law of a version in a slot. */
  lawAt(version: Version, slot: number): LatencyLaw {
    const r = this.stream.params.regression;
    return version === 'canary' && r !== null && slot >= r.atSlot ? this.laws.regressed : this.laws.healthy;
  }

  /** Both versions' counts of a slot (null outside the stream or when the version had no requests). */
  slotsOf(slot: number): { baseline: SlotCounts | null; canary: SlotCounts | null } {
    let entry = this.cache.get(slot);
    if (entry === undefined) {
      entry = { baseline: this.counts('baseline', slot), canary: this.counts('canary', slot) };
      this.cache.set(slot, entry);
      this.cache.delete(slot - 2 * this.stream.params.windowSlots);
    }
    return entry;
  }

  private counts(version: Version, slot: number): SlotCounts | null {
    if (slot < 0 || slot >= this.stream.slots) return null;
    const v = this.stream[version];
    const requests = v.requests[slot]!;
    if (requests === 0) return null;
    const law = this.lawAt(version, slot);
    const above = new Map<number, number>();
    return {
      requests,
      errors: v.errors[slot]!,
      countAbove: (us) => {
        let n = above.get(us);
        if (n === undefined) {
          n = this.binomial(requests, 1 - lawCdf(law, us));
          above.set(us, n);
        }
        return n;
      },
    };
  }

  /** The window of `version` that ends with slot `lastSlot` (it holds the slots since the rollout began, at most windowSlots). */
  window(version: Version, lastSlot: number): WindowSnapshot {
    const { params } = this.stream;
    const v = this.stream[version];
    const first = Math.max(0, lastSlot - params.windowSlots + 1);
    const r = params.regression;
    let requests = 0;
    let errors = 0;
    let weighted = 0;
    let regressed = 0;
    let slotsReported = 0;
    for (let i = first; i <= lastSlot; i++) {
      const n = v.requests[i]!;
      requests += n;
      errors += v.errors[i]!;
      weighted += Math.sqrt(n) * v.shocks[i]!;
      if (n > 0) slotsReported++;
      if (version === 'canary' && r !== null && i >= r.atSlot) regressed += n;
    }
    const z = requests > 0 ? weighted / Math.sqrt(requests) : 0;
    const inverse = mixtureQuantile(this.laws.healthy, this.laws.regressed, requests > 0 ? regressed / requests : 0);
    const quantileUs = (q: number): number => {
      if (!(requests > 0)) return Number.NaN;
      const u = Math.min(requests / (requests + 1), Math.max(1 / (requests + 1), q + z * Math.sqrt((q * (1 - q)) / (requests + 2))));
      return inverse(u);
    };
    const windowMs = params.windowSlots * params.slotMs;
    // As FleetWindow: the time from the window's first slot with data (here: the rollout's first slot) to its last.
    const coveredMs = (lastSlot - first + 1) * params.slotMs;
    return {
      version: version === 'baseline' ? 'v1' : 'v2',
      requests,
      errors,
      errorRatio: requests > 0 ? errors / requests : Number.NaN,
      p50Us: quantileUs(0.5),
      p95Us: quantileUs(0.95),
      p99Us: quantileUs(0.99),
      requestsPerSecond: requests / (coveredMs / 1000),
      windowMs,
      coveredMs,
      pods: slotsReported > 0 ? 1 : 0,
      slotsReported,
      quantileUs,
    };
  }
}

/**
 * The quantile function of the mixture (1 - w) healthy + w regressed, µs: closed form at w = 0 or 1, else bisection on
 * ln(latency) between the two laws' quantiles (the mixture's lies between them), to 1e-7 relative.
 */
export function mixtureQuantile(healthy: LatencyLaw, regressed: LatencyLaw, w: number): (u: number) => number {
  if (w <= 0 || healthy.mu === regressed.mu) return (u) => lawQuantile(healthy, u);
  if (w >= 1) return (u) => lawQuantile(regressed, u);
  return (u) => {
    const zu = normalQuantile(u, 0, 1);
    let low = Math.min(healthy.mu, regressed.mu) + healthy.sigma * zu;
    let high = Math.max(healthy.mu, regressed.mu) + healthy.sigma * zu;
    while (high - low > 1e-7) {
      const mid = (low + high) / 2;
      const f = (1 - w) * normalCdf(mid, healthy.mu, healthy.sigma) + w * normalCdf(mid, regressed.mu, regressed.sigma);
      if (f < u) low = mid;
      else high = mid;
    }
    return Math.exp((low + high) / 2);
  };
}
