/**
 * What a load run returns and reports as it goes: timeline points, events, step results and the JSON result
 * (`result.json`). Latencies ms, rates rps, times s since the load started.
 */
import type { LatencyFigures } from '../core/verdict.ts';
import type { GateView } from './monitor.ts';
import type { SpanCounts, VersionFigures } from './recorder.ts';

/** Where a run stands, for a progress bar. */
export interface RunProgress {
  /** Seconds since the load started. */
  readonly elapsedS: number;
  /** The run's bound, s. */
  readonly durationS: number;
  readonly step: string;
  /** Offered rate of the current step, rps. */
  readonly offeredRps: number;
  readonly requests: number;
  readonly maxRequests: number;
}

/** One sample interval of the run. */
export interface TimelinePoint {
  /** End of the interval, seconds since the load started. */
  readonly tS: number;
  /** Offered rate of the step running at the end of the interval, rps. */
  readonly offeredRps: number;
  /** Responses plus failures in the interval divided by its length, rps. */
  readonly achievedRps: number;
  /** Figures by version, with `all` (every response and failure). */
  readonly versions: Readonly<Record<string, VersionFigures>>;
  /** The flag read at the end of the interval; null when unset; undefined when not watched or unreadable. */
  readonly flag?: string | null | undefined;
  /** The gate's latest verdict; null before the first; undefined when not watched or unreadable. */
  readonly gate?: GateView | null | undefined;
}

export interface RunEvent {
  /** Seconds since the load started. */
  readonly tS: number;
  readonly kind: 'step' | 'regression' | 'rollback' | 'stop';
  readonly text: string;
}

/** One step's outcome: its `all` figures but the error ratio, and its counts. Latencies ms, rates rps. */
export interface StepResult extends SpanCounts, Omit<LatencyFigures, 'errorRatio'> {
  readonly label: string;
  readonly offeredRps: number;
  /** How long it ran, s. */
  readonly durationS: number;
  readonly achievedRps: number;
}

/** The JSON result of a run (`result.json`); NaN figures are written as null. */
export interface LoadResult {
  readonly schema: 'canary-gate/load-result/1';
  readonly profile: {
    readonly name: string;
    readonly description: string;
    readonly durationS: number;
    readonly maxRequests: number;
    readonly connections: number;
  };
  readonly target: string;
  readonly startedAt: string;
  /** Seconds from the start of the load to its end. */
  readonly elapsedS: number;
  readonly stopReason: 'completed' | 'max-requests' | 'duration' | 'aborted' | 'rollback';
  readonly steps: readonly StepResult[];
  readonly totals: StepResult & { readonly maxMs: number; readonly errorRatio: number };
  /** Whole-run figures by version (without `all`). */
  readonly versions: Readonly<Record<string, VersionFigures>>;
  readonly timeline: readonly TimelinePoint[];
  readonly events: readonly RunEvent[];
  /** The flag watched, its first and last value read; null when no flag was watched. */
  readonly flag: {
    readonly key: string;
    readonly rollbackValue: string;
    readonly first: string | null | undefined;
    readonly last: string | null | undefined;
  } | null;
  /** When the flag first turned to its rollback value during the run. */
  readonly rollback: { readonly tS: number; readonly flag: string } | null;
  /**
   * The demo fleet's run: when v2 regressed (s), what the router sent each version, and the decision record (its
   * JSON, parsed) when the flag rolled back, else null.
   */
  readonly demo: {
    readonly regressAtS: number | null;
    readonly routed: { readonly baseline: number; readonly canary: number };
    readonly decision?: unknown;
  } | null;
}

/** A step's (or the whole run's) result from its `all` figures and counts. */
export function stepResult(
  label: string,
  offeredRps: number,
  durationS: number,
  all: VersionFigures | undefined,
  counts: SpanCounts,
): StepResult {
  const requests = all?.requests ?? 0;
  return {
    label,
    offeredRps,
    durationS: Math.round(durationS * 100) / 100,
    requests,
    achievedRps: durationS > 0 ? Math.round((requests / durationS) * 10) / 10 : 0,
    errors: all?.errors ?? 0,
    p50Ms: all?.p50Ms ?? Number.NaN,
    p95Ms: all?.p95Ms ?? Number.NaN,
    p99Ms: all?.p99Ms ?? Number.NaN,
    ...counts,
  };
}
