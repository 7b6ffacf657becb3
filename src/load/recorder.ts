/**
 * What a load run records, response by response: latency into HDR histograms (the core's, µs inside, ms out) per
 * version, for the whole run, for the current step and for the current sample interval; counts of responses,
 * errors and status codes. `seal()` closes a sample interval into a timeline point; quantiles always come from a
 * histogram, never from averaging other quantiles.
 *
 * An error is a 5xx response or a request that failed (socket error, timeout). Failures carry no version: they count
 * in `all` only. Latency is the client's time from sending a request to the end of its response (ms), as
 * autocannon measures it, without correction for coordinated omission.
 */
import { createHistogram, quantileUs, recordLatency, type Histogram } from '../core/histogram.ts';
import type { LatencyFigures } from '../core/verdict.ts';

/** The pseudo-version that holds every response and failure. */
export const ALL = 'all';

/**
 * Latency and error figures of one version over some span (ms; NaN when no response). `requests` and `errors`
 * include failed requests for `all` only; an error is a 5xx response or a failed request.
 */
export interface VersionFigures extends LatencyFigures {
  readonly maxMs: number;
}

class Tally {
  readonly histogram: Histogram = createHistogram();
  requests = 0;
  errors = 0;

  figures(): VersionFigures {
    const q = (quantile: number): number => quantileUs(this.histogram, quantile) / 1000;
    return {
      requests: this.requests,
      errors: this.errors,
      errorRatio: this.requests === 0 ? Number.NaN : this.errors / this.requests,
      p50Ms: q(0.5),
      p95Ms: q(0.95),
      p99Ms: q(0.99),
      maxMs: this.histogram.totalCount === 0 ? Number.NaN : this.histogram.maxValue / 1000,
    };
  }

  reset(): void {
    this.histogram.reset();
    this.requests = 0;
    this.errors = 0;
  }
}

/** Tallies by version, created on first sight. */
class Tallies {
  readonly byVersion = new Map<string, Tally>();

  get(version: string): Tally {
    let t = this.byVersion.get(version);
    if (t === undefined) {
      t = new Tally();
      this.byVersion.set(version, t);
    }
    return t;
  }

  figures(): Record<string, VersionFigures> {
    const out: Record<string, VersionFigures> = {};
    for (const [version, t] of this.byVersion) out[version] = t.figures();
    return out;
  }

  reset(): void {
    for (const t of this.byVersion.values()) t.reset();
  }

  destroy(): void {
    for (const t of this.byVersion.values()) t.histogram.destroy();
    this.byVersion.clear();
  }
}

/** Counts of one span that are not per version. */
export interface SpanCounts {
  /** Responses whose status is not 2xx. */
  readonly non2xx: number;
  /** Requests that failed without a response (socket errors, timeouts). */
  readonly failures: number;
  /** Responses per status code, e.g. `{ "200": 981, "500": 19 }`. */
  readonly statusCodes: Readonly<Record<string, number>>;
}

/**
 * Records a run's responses (no I/O). Holds WebAssembly histograms: call {@link LoadRecorder.destroy} when done.
 * Spans: the whole run (`totals`), the current step (`sealStep`), the current sample interval (`sealInterval`).
 */
export class LoadRecorder {
  private readonly total = new Tallies();
  private readonly step = new Tallies();
  private readonly interval = new Tallies();
  private counts = { total: emptyCounts(), step: emptyCounts(), interval: emptyCounts() };

  /** Requests recorded so far (responses plus failures). */
  get requests(): number {
    return this.total.get(ALL).requests;
  }

  /**
   * Records one response.
   * @param version the version the response named, or null when it named none (counted in `all` only)
   * @param latencyMs time from sending the request to the end of the response, ms
   */
  response(version: string | null, status: number, latencyMs: number): void {
    const isError = status >= 500;
    const latencyUs = latencyMs * 1000;
    for (const tallies of [this.total, this.step, this.interval]) {
      for (const v of version === null || version === ALL ? [ALL] : [ALL, version]) {
        const t = tallies.get(v);
        recordLatency(t.histogram, latencyUs);
        t.requests++;
        if (isError) t.errors++;
      }
    }
    for (const c of [this.counts.total, this.counts.step, this.counts.interval]) {
      if (status < 200 || status > 299) c.non2xx++;
      c.statusCodes[status] = (c.statusCodes[status] ?? 0) + 1;
    }
  }

  /** Records a request that failed without a response (socket error, timeout): an error of `all`. */
  failure(): void {
    for (const tallies of [this.total, this.step, this.interval]) {
      const t = tallies.get(ALL);
      t.requests++;
      t.errors++;
    }
    for (const c of [this.counts.total, this.counts.step, this.counts.interval]) c.failures++;
  }

  /** Closes the current sample interval: its figures by version (with `all`) and counts; the next one starts empty. */
  sealInterval(): { versions: Record<string, VersionFigures>; counts: SpanCounts } {
    const out = { versions: this.interval.figures(), counts: this.counts.interval };
    this.interval.reset();
    this.counts.interval = emptyCounts();
    return out;
  }

  /** Closes the current step (one autocannon run), like {@link sealInterval}. */
  sealStep(): { versions: Record<string, VersionFigures>; counts: SpanCounts } {
    const out = { versions: this.step.figures(), counts: this.counts.step };
    this.step.reset();
    this.counts.step = emptyCounts();
    return out;
  }

  /** The whole run so far. */
  totals(): { versions: Record<string, VersionFigures>; counts: SpanCounts } {
    return { versions: this.total.figures(), counts: this.counts.total };
  }

  /** Frees the WebAssembly histograms. The recorder is unusable afterwards. */
  destroy(): void {
    this.total.destroy();
    this.step.destroy();
    this.interval.destroy();
  }
}

function emptyCounts(): { non2xx: number; failures: number; statusCodes: Record<string, number> } {
  return { non2xx: 0, failures: 0, statusCodes: {} };
}
