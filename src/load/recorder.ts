/**
 * What a load run records, response by response: latency into HDR histograms (the core's, µs inside, ms out) per
 * version, for the whole run, for the current step and for the current sample interval; counts of responses,
 * errors and status codes. Sealing a span closes it and starts the next one empty; quantiles always come from a
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

/** Counts of one span that are not per version. */
export interface SpanCounts {
  /** Responses whose status is not 2xx. */
  readonly non2xx: number;
  /** Requests that failed without a response (socket errors, timeouts). */
  readonly failures: number;
  /** Responses per status code, e.g. `{ "200": 981, "500": 19 }`. */
  readonly statusCodes: Readonly<Record<string, number>>;
}

/** A closed span: figures by version (with `all`), of the versions that had requests in it, and its counts. */
export interface SpanFigures {
  readonly versions: Record<string, VersionFigures>;
  readonly counts: SpanCounts;
}

interface Tally {
  readonly histogram: Histogram;
  requests: number;
  errors: number;
}

function figuresOf({ histogram, requests, errors }: Tally): VersionFigures {
  const q = (quantile: number): number => quantileUs(histogram, quantile) / 1000;
  return {
    requests,
    errors,
    errorRatio: requests === 0 ? Number.NaN : errors / requests,
    p50Ms: q(0.5),
    p95Ms: q(0.95),
    p99Ms: q(0.99),
    maxMs: histogram.totalCount === 0 ? Number.NaN : histogram.maxValue / 1000,
  };
}

/** One span: tallies by version, created on first sight and kept (reset, not freed) when the span is sealed. */
export class Span {
  private readonly tallies = new Map<string, Tally>();
  private counts = { non2xx: 0, failures: 0, statusCodes: {} as Record<string, number> };

  tally(version: string): Tally {
    let t = this.tallies.get(version);
    if (t === undefined) {
      t = { histogram: createHistogram(), requests: 0, errors: 0 };
      this.tallies.set(version, t);
    }
    return t;
  }

  /** @param status the response's status, or null for a request that failed without one (an error of `all`) */
  record(version: string | null, status: number | null, latencyUs: number): void {
    for (const v of version === null || version === ALL ? [ALL] : [ALL, version]) {
      const t = this.tally(v);
      if (status !== null) recordLatency(t.histogram, latencyUs);
      t.requests++;
      if (status === null || status >= 500) t.errors++;
    }
    if (status === null) this.counts.failures++;
    else {
      if (status < 200 || status > 299) this.counts.non2xx++;
      this.counts.statusCodes[status] = (this.counts.statusCodes[status] ?? 0) + 1;
    }
  }

  /** The span so far. */
  figures(): SpanFigures {
    const versions: Record<string, VersionFigures> = {};
    for (const [version, t] of this.tallies) if (t.requests > 0) versions[version] = figuresOf(t);
    return { versions, counts: this.counts };
  }

  /** The span so far; the span starts again empty. */
  seal(): SpanFigures {
    const out = this.figures();
    for (const t of this.tallies.values()) {
      t.histogram.reset();
      t.requests = 0;
      t.errors = 0;
    }
    this.counts = { non2xx: 0, failures: 0, statusCodes: {} };
    return out;
  }

  destroy(): void {
    for (const t of this.tallies.values()) t.histogram.destroy();
    this.tallies.clear();
  }
}

/**
 * Records a run's responses (no I/O) into three spans: the whole run (`total`), the current step (`step`) and the
 * current sample interval (`interval`); sealing a span hands over its figures and starts it again empty. Holds
 * WebAssembly histograms: call {@link LoadRecorder.destroy} when done.
 */
export class LoadRecorder {
  readonly total = new Span();
  readonly step = new Span();
  readonly interval = new Span();

  /** Requests recorded so far (responses plus failures). */
  get requests(): number {
    return this.total.tally(ALL).requests;
  }

  /**
   * Records one response.
   * @param version the version the response named, or null when it named none (counted in `all` only)
   * @param latencyMs time from sending the request to the end of the response, ms
   */
  response(version: string | null, status: number, latencyMs: number): void {
    for (const span of [this.total, this.step, this.interval]) span.record(version, status, latencyMs * 1000);
  }

  /** Records a request that failed without a response (socket error, timeout): an error of `all`. */
  failure(): void {
    for (const span of [this.total, this.step, this.interval]) span.record(null, null, 0);
  }

  /** Frees the WebAssembly histograms. The recorder is unusable afterwards. */
  destroy(): void {
    for (const span of [this.total, this.step, this.interval]) span.destroy();
  }
}
