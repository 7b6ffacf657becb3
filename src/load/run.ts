/**
 * Runs a load profile: one autocannon run per step (a ramp is several steps), each at a constant offered rate
 * (`overallRate`), one after the other over kept-warm targets; a sampler that closes a timeline point every
 * `monitor.every` (per-version latency and errors from the responses, the flag from Redis, the gate's verdict);
 * the demo fleet and its regression when the profile asks for them.
 *
 * The version of a response is read from the profile's `versions.header`, else from the top-level JSON field
 * `versions.jsonField` of its body (the demo apps answer `{"version": "v2", ...}`); responses naming none count in
 * `all` only. autocannon calls a request's `onResponse` synchronously just before it emits `response` for the same
 * client, which is how a response's version meets its latency.
 *
 * The run stops by itself: at the end of the last step, at `duration`, or after `maxRequests` requests; and when
 * `signal` aborts.
 */
import autocannon from 'autocannon';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { DEMO_REGRESSION, startDemoFleet, type DemoFleet } from '../demo/fleet.ts';
import { createFlagReader, createStatusPoller, gateViewOf, type FlagReader, type GateView } from './monitor.ts';
import type { LoadProfile } from './profile.ts';
import { ALL, LoadRecorder, type SpanCounts, type VersionFigures } from './recorder.ts';
import { mixSequence, versionOf } from './request-mix.ts';
import { checkTarget } from './target.ts';

export interface RunOptions {
  /** Overrides the profile's target (an origin). Refused for a profile with a `demo` section. */
  readonly target?: string | undefined;
  /** Accept a target that is not loopback. Default false. */
  readonly allowNonLoopback?: boolean;
  /** Overrides `monitor.redis.url`. */
  readonly redisUrl?: string | undefined;
  /** Environment: REDIS_URL (flag and demo fleet), CANARY_GATE_POLICY_* (demo fleet). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Called once per timeline point (e.g. a progress bar) and per event (a line for people). */
  readonly onPoint?: (point: TimelinePoint, progress: RunProgress) => void;
  readonly onEvent?: (event: RunEvent) => void;
  /** Aborting stops the run early; the result is still returned, with stopReason `aborted`. */
  readonly signal?: AbortSignal;
}

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

/** One step's outcome. Latencies ms, rates rps. */
export interface StepResult extends SpanCounts {
  readonly label: string;
  readonly offeredRps: number;
  /** How long it ran, s. */
  readonly durationS: number;
  readonly requests: number;
  readonly achievedRps: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

/** The JSON result of a run (`result.json`); NaN figures are written as null. */
export interface LoadResult {
  readonly schema: 'canary-gate/load-result/1';
  readonly profile: { readonly name: string; readonly description: string; readonly durationS: number; readonly maxRequests: number; readonly connections: number };
  readonly target: string;
  readonly startedAt: string;
  /** Seconds from the start of the load to its end. */
  readonly elapsedS: number;
  readonly stopReason: 'completed' | 'max-requests' | 'duration' | 'aborted';
  readonly steps: readonly StepResult[];
  readonly totals: StepResult & { readonly maxMs: number; readonly errorRatio: number };
  /** Whole-run figures by version (without `all`). */
  readonly versions: Readonly<Record<string, VersionFigures>>;
  readonly timeline: readonly TimelinePoint[];
  readonly events: readonly RunEvent[];
  /** The flag watched, its first and last value read; null when no flag was watched. */
  readonly flag: { readonly key: string; readonly rollbackValue: string; readonly first: string | null | undefined; readonly last: string | null | undefined } | null;
  /** When the flag first turned to its rollback value during the run. */
  readonly rollback: { readonly tS: number; readonly flag: string } | null;
  readonly demo: { readonly regressAtS: number | null; readonly routed: { readonly baseline: number; readonly canary: number } } | null;
}

/** autocannon's sample interval, ms: it acts on stop() at its next sample (its default is 1 s). */
const AUTOCANNON_SAMPLE_MS = 100;
/** How long past `duration` a step may overrun before it is stopped, ms. */
const DEADLINE_GRACE_MS = 1000;

/**
 * Runs a profile to its end and returns the result; the caller writes it (see report.ts). Steps run one after the
 * other, each for its duration (ms in the profile, cut to the time left) and at most rate x duration requests; the
 * timeline gets a point every `monitor.everyMs`. A profile with `demo` starts the demo fleet first and stops it after.
 * @returns the {@link LoadResult}: latencies in ms, rates in rps, times in s since the load started
 * @throws CanaryGateError `CG_CONFIG_INVALID` for a refused target; `CG_DEMO_NO_REDIS` when a demo profile finds no Redis
 */
export async function runProfile(profile: LoadProfile, options: RunOptions = {}): Promise<LoadResult> {
  const env = options.env ?? {};
  if (profile.demo !== undefined && options.target !== undefined) {
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `load profile ${profile.name} starts its own demo fleet`, { details: ['target: leave out --target for a profile with a demo section'] });
  }
  const target = profile.demo === undefined ? checkTarget(options.target ?? profile.target, options.allowNonLoopback) : '';
  const fleet: DemoFleet | null = profile.demo === undefined ? null : await startDemoFleet({ env, startPercentage: profile.demo.startPercentage, actor: 'canary-gate load' });
  let flags: FlagReader | null = null;
  const recorder = new LoadRecorder();
  try {
    const origin = fleet?.url ?? target;
    const watched = fleet ? { key: fleet.flagKey, rollbackValue: fleet.rollbackValue, url: fleet.redisUrl } : profile.monitor.redis && {
      key: profile.monitor.redis.flagKey,
      rollbackValue: profile.monitor.redis.rollbackValue,
      url: options.redisUrl ?? profile.monitor.redis.url ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    };
    flags = watched ? createFlagReader(watched.url, watched.key) : null;
    const pollGate: (() => Promise<GateView | null | undefined>) | null = fleet
      ? async () => {
          const v = fleet.latestVerdict();
          return v && gateViewOf(v);
        }
      : profile.monitor.sidecars.length > 0
        ? createStatusPoller(profile.monitor.sidecars)
        : null;
    return await drive(profile, options, origin, recorder, fleet, flags, watched ?? null, pollGate);
  } finally {
    recorder.destroy();
    flags?.close();
    await fleet?.close();
  }
}

async function drive(
  profile: LoadProfile,
  options: RunOptions,
  origin: string,
  recorder: LoadRecorder,
  fleet: DemoFleet | null,
  flags: FlagReader | null,
  watched: { key: string; rollbackValue: string } | null,
  pollGate: (() => Promise<GateView | null | undefined>) | null,
): Promise<LoadResult> {
  const initialFlag = flags ? await flags.read() : undefined;
  const startMs = Date.now();
  const elapsedS = (): number => (Date.now() - startMs) / 1000;
  const events: RunEvent[] = [];
  const event = (kind: RunEvent['kind'], text: string): void => {
    const e = { tS: Math.round(elapsedS() * 100) / 100, kind, text };
    events.push(e);
    options.onEvent?.(e);
  };
  const timeline: TimelinePoint[] = [];
  let stopReason: LoadResult['stopReason'] = 'completed';
  let current: autocannon.Instance | null = null;
  let stopped = false;
  let endPause: () => void = () => undefined;
  const stop = (reason: LoadResult['stopReason'], text: string): void => {
    if (stopped) return;
    stopped = true;
    stopReason = reason;
    event('stop', text);
    current?.stop();
    endPause();
  };
  /** Waits `ms`, or less when the run stops. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      endPause = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const onAbort = (): void => stop('aborted', 'stopped by the user');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  // The sampler: one timeline point per interval, with the flag and the gate read at its end.
  let step = { label: profile.steps[0]?.label ?? '', rateRps: profile.steps[0]?.rateRps ?? 0 };
  let firstFlag = initialFlag;
  let lastFlag = initialFlag;
  let rollback: LoadResult['rollback'] = null;
  let lastSealMs = startMs;
  /** @param last the run's end: a sliver shorter than a quarter interval updates the flag but adds no point */
  const sample = async (last = false): Promise<void> => {
    const nowMs = Date.now();
    const lengthS = Math.max(0.001, (nowMs - lastSealMs) / 1000);
    const sliver = last && lengthS * 1000 < profile.monitor.everyMs / 4;
    lastSealMs = nowMs;
    const interval = recorder.sealInterval();
    const [flag, gate] = await Promise.all([flags?.read(), pollGate?.()]);
    const all = interval.versions[ALL];
    const point: TimelinePoint = {
      tS: Math.round(((nowMs - startMs) / 1000) * 100) / 100,
      offeredRps: step.rateRps,
      achievedRps: Math.round(((all?.requests ?? 0) / lengthS) * 10) / 10,
      versions: interval.versions,
      ...(flags ? { flag } : {}),
      ...(pollGate ? { gate } : {}),
    };
    if (!sliver) timeline.push(point);
    if (flags && flag !== undefined) {
      if (firstFlag === undefined) firstFlag = flag;
      if (rollback === null && flag === watched!.rollbackValue && lastFlag !== undefined && lastFlag !== flag) {
        rollback = { tS: point.tS, flag };
        event('rollback', `${watched!.key} = ${flag}: rolled back (was ${lastFlag ?? 'unset'})`);
      }
      lastFlag = flag;
    }
    if (!sliver) options.onPoint?.(point, { elapsedS: point.tS, durationS: profile.durationMs / 1000, step: step.label, offeredRps: step.rateRps, requests: recorder.requests, maxRequests: profile.maxRequests });
  };
  let sampling = true;
  let wake: () => void = () => undefined;
  const sampler = (async () => {
    let next = startMs + profile.monitor.everyMs;
    while (sampling) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, next - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (!sampling) break;
      next += profile.monitor.everyMs;
      await sample();
    }
  })();

  let regressAtS: number | null = null;
  const regressTimer = fleet && profile.demo && profile.demo.regressAtMs !== null
    ? setTimeout(() => {
        fleet.regress();
        regressAtS = elapsedS();
        const { from, to } = DEMO_REGRESSION;
        event('regression', `v2 regresses now: median ${to.medianMs} ms (was ${from.medianMs}), ${to.errorRatio * 100} % errors`);
      }, profile.demo.regressAtMs)
    : null;
  // A backstop: every step is already cut to the time left, so this fires only when a step overruns.
  const deadline = setTimeout(() => stop('duration', `duration ${profile.durationMs / 1000} s reached`), profile.durationMs + DEADLINE_GRACE_MS);

  // Tag each response with the version it names, just before autocannon reports it.
  let tagged: string | null = null;
  const sequence = mixSequence(profile.requests).map((r) => ({
    method: r.method as autocannon.Request['method'],
    path: r.path,
    headers: { ...r.headers },
    ...(r.body === undefined ? {} : { body: r.body }),
    onResponse: (_status: number, body: string, _context: unknown, headers: Record<string, unknown>) => {
      tagged = versionOf(body, headers ?? {}, profile.versions);
    },
  }));

  const steps: StepResult[] = [];
  try {
    for (const s of profile.steps) {
      const remainingMs = profile.durationMs - (Date.now() - startMs);
      if (stopped || remainingMs <= 0) break;
      step = { label: s.label, rateRps: s.rateRps };
      event('step', `${s.label}: ${s.rateRps} rps for ${(s.durationMs / 1000).toFixed(1)} s`);
      const leftRequests = profile.maxRequests - recorder.requests;
      if (leftRequests <= 0) break;
      const stepMs = Math.min(s.durationMs, remainingMs);
      // autocannon lets each connection send its share of a second's rate when that second starts, and acts on the
      // end of a step only at its next sample: without a cap a step of N s could send N + 1 seconds' worth.
      const stepRequests = Math.min(leftRequests, Math.max(1, Math.round((s.rateRps * stepMs) / 1000)));
      const connections = Math.min(profile.connections, stepRequests);
      const stepStartMs = Date.now();
      // autocannon's own result is not used: its latency is corrected for coordinated omission and it has no p95.
      await new Promise<void>((resolve, reject) => {
        const instance = autocannon(
          {
            url: origin,
            connections,
            overallRate: s.rateRps,
            // Each connection stops at its share of the step's requests.
            maxOverallRequests: stepRequests,
            sampleInt: AUTOCANNON_SAMPLE_MS,
            duration: stepMs / 1000,
            timeout: profile.timeoutMs / 1000,
            requests: sequence as autocannon.Request[],
          },
          (err) => (err ? reject(err as Error) : resolve()),
        );
        current = instance;
        instance.on('response', (_client, statusCode: number, _bytes: number, responseTimeMs: number) => {
          recorder.response(tagged, statusCode, responseTimeMs);
          tagged = null;
          if (recorder.requests >= profile.maxRequests) stop('max-requests', `maxRequests ${profile.maxRequests} reached`);
        });
        instance.on('reqError', () => {
          recorder.failure();
          if (recorder.requests >= profile.maxRequests) stop('max-requests', `maxRequests ${profile.maxRequests} reached`);
        });
      });
      current = null;
      // A step whose capped requests are all answered early holds its rate by waiting out its time.
      const restMs = stepStartMs + stepMs - Date.now();
      if (!stopped && restMs > 0) await pause(restMs);
      const span = recorder.sealStep();
      const all = span.versions[ALL];
      const ranS = (Date.now() - stepStartMs) / 1000;
      steps.push(stepResult(s.label, s.rateRps, ranS, all, span.counts));
    }
  } finally {
    clearTimeout(deadline);
    if (regressTimer) clearTimeout(regressTimer);
    options.signal?.removeEventListener('abort', onAbort);
    sampling = false;
    wake();
    await sampler;
  }
  await sample(true); // the last, partial interval

  const totals = recorder.totals();
  const endS = elapsedS();
  const allTotal = totals.versions[ALL];
  const versions = Object.fromEntries(Object.entries(totals.versions).filter(([v]) => v !== ALL));
  const offered = steps.reduce((sum, s) => sum + s.offeredRps * s.durationS, 0);
  return {
    schema: 'canary-gate/load-result/1',
    profile: { name: profile.name, description: profile.description, durationS: profile.durationMs / 1000, maxRequests: profile.maxRequests, connections: profile.connections },
    target: origin,
    startedAt: new Date(startMs).toISOString(),
    elapsedS: Math.round(endS * 100) / 100,
    stopReason,
    steps,
    totals: {
      ...stepResult('total', endS > 0 ? Math.round(offered / endS) : 0, endS, allTotal, totals.counts),
      maxMs: allTotal?.maxMs ?? Number.NaN,
      errorRatio: allTotal?.errorRatio ?? Number.NaN,
    },
    versions,
    timeline,
    events,
    flag: watched ? { key: watched.key, rollbackValue: watched.rollbackValue, first: firstFlag, last: lastFlag } : null,
    rollback,
    demo: fleet ? { regressAtS, routed: fleet.routed() } : null,
  };
}

function stepResult(label: string, offeredRps: number, durationS: number, all: VersionFigures | undefined, counts: SpanCounts): StepResult {
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
