/**
 * Runs a load profile: one autocannon run per step (a ramp is several steps), each at a constant offered rate
 * (`overallRate`), one after the other over kept-warm targets; a sampler that closes a timeline point every
 * `monitor.every` (per-version latency and errors from the responses, the flag from Redis, the gate's verdict);
 * the demo fleet and its regression when the profile asks for them. `canary-gate demo` is this runner with a
 * printer (src/demo/scenario.ts).
 *
 * The version of a response is read from the profile's `versions.header`, else from the top-level JSON field
 * `versions.jsonField` of its body (the demo apps answer `{"version": "v2", ...}`); responses naming none count in
 * `all` only. autocannon calls a request's `onResponse` synchronously just before it emits `response` for the same
 * client, which is how a response's version meets its latency.
 *
 * The run stops by itself: at the end of the last step, at `duration`, or after `maxRequests` requests; and when
 * `signal` aborts, or with `stopOnRollback` when the flag turns to its rollback value.
 */
import { setTimeout as delay } from 'node:timers/promises';
import autocannon from 'autocannon';
import type { EvaluationEvent } from '../app/evaluator.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { startDemoFleet, type DemoFleet } from '../demo/fleet.ts';
import { createFlagReader, createStatusPoller, gateViewOf, type FlagReader, type GateView } from './monitor.ts';
import type { LoadProfile, LoadStep } from './profile.ts';
import { ALL, LoadRecorder } from './recorder.ts';
import { stepResult, type LoadResult, type RunEvent, type RunProgress, type StepResult, type TimelinePoint } from './result.ts';
import { mixSequence, versionOf } from './request-mix.ts';
import { checkTarget } from './target.ts';

export type { LoadResult, RunEvent, RunProgress, StepResult, TimelinePoint } from './result.ts';

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
  /** End the run as soon as the flag turns to its rollback value (stopReason `rollback`). Default false. */
  readonly stopOnRollback?: boolean;
  /** For a profile with a `demo` section: who starts the rollout, and hooks into the fleet. */
  readonly fleet?: {
    /** For the audit entry of the rollout's start. Default `canary-gate load`. */
    readonly actor?: string;
    /** Called once the fleet is up, before the load starts. */
    readonly onStart?: (fleet: DemoFleet) => void;
    /** Called after every evaluation of either sidecar. */
    readonly onEvaluation?: (event: EvaluationEvent) => void;
  };
}

type StopReason = LoadResult['stopReason'];

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
  if (profile.demo !== undefined && options.target !== undefined) {
    const details = ['target: leave out --target for a profile with a demo section'];
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `load profile ${profile.name} starts its own demo fleet`, { details });
  }
  const target = profile.demo === undefined ? checkTarget(options.target ?? profile.target, options.allowNonLoopback) : '';
  const { actor = 'canary-gate load', onEvaluation, onStart } = options.fleet ?? {};
  const fleet =
    profile.demo && (await startDemoFleet({ env: options.env ?? {}, startPercentage: profile.demo.startPercentage, actor, onEvaluation }));
  let drive: Drive | undefined;
  try {
    drive = new Drive({ profile, options, fleet: fleet ?? null, origin: fleet?.url ?? target });
    if (fleet) onStart?.(fleet);
    return await drive.run();
  } finally {
    drive?.close();
    await fleet?.close();
  }
}

/** What a run works with: the profile, the caller's options, the demo fleet (or null) and where the load goes. */
interface DriveSetup {
  readonly profile: LoadProfile;
  readonly options: RunOptions;
  readonly fleet: DemoFleet | null;
  readonly origin: string;
}

/** One run: the steps, the sampler, the regression timer and the flag watch, and the state they share. */
class Drive {
  private readonly recorder = new LoadRecorder();
  /** The flag watched (the fleet's, else the profile's `monitor.redis`), or null. */
  private readonly flag: { readonly key: string; readonly rollbackValue: string; readonly reader: FlagReader } | null = null;
  /** The gate's latest view: in process for the fleet, else from the profile's `monitor.sidecars`, else none. */
  private readonly pollGate: (() => Promise<GateView | null | undefined>) | null = null;
  /** The request mix, as the sequence autocannon cycles through. */
  private readonly requests: autocannon.Request[];
  /** The version the latest response named, set by its request's `onResponse` just before autocannon reports it. */
  private tagged: string | null = null;
  private startMs = Date.now();
  private lastSealMs = 0;
  private step: Pick<LoadStep, 'label' | 'rateRps'>;
  private readonly events: RunEvent[] = [];
  private readonly timeline: TimelinePoint[] = [];
  private stopReason: StopReason = 'completed';
  private stopped = false;
  /** The autocannon instance of the running step. */
  private current: autocannon.Instance | null = null;
  /** Aborted when the run stops: cuts short the wait of a step that holds its rate. */
  private readonly stopping = new AbortController();
  private firstFlag: string | null | undefined;
  private lastFlag: string | null | undefined;
  private rollback: LoadResult['rollback'] = null;
  private regressAtS: number | null = null;
  private readonly profile: LoadProfile;
  private readonly options: RunOptions;
  private readonly fleet: DemoFleet | null;
  private readonly origin: string;

  constructor({ profile, options, fleet, origin }: DriveSetup) {
    this.profile = profile;
    this.options = options;
    this.fleet = fleet;
    this.origin = origin;
    const { redis } = profile.monitor;
    const watch = fleet ? fleet.config.flag : redis && { key: redis.flagKey, rollbackValue: redis.rollbackValue };
    const url = fleet?.redisUrl ?? options.redisUrl ?? redis?.url ?? options.env?.REDIS_URL ?? 'redis://127.0.0.1:6379';
    if (watch) this.flag = { key: watch.key, rollbackValue: watch.rollbackValue, reader: createFlagReader(url, watch.key) };
    if (fleet) this.pollGate = async () => gateViewOf(fleet.latestVerdict());
    else if (profile.monitor.sidecars.length > 0) this.pollGate = createStatusPoller(profile.monitor.sidecars);
    this.step = profile.steps[0] ?? { label: '', rateRps: 0 };
    this.requests = mixSequence(profile.requests).map((r) => ({
      method: r.method as autocannon.Request['method'],
      path: r.path,
      headers: { ...r.headers },
      ...(r.body === undefined ? {} : { body: r.body }),
      onResponse: (_status: number, body: string, _context: unknown, headers: Record<string, unknown>) => {
        this.tagged = versionOf(body, headers ?? {}, profile.versions);
      },
    })) as autocannon.Request[];
  }

  async run(): Promise<LoadResult> {
    const { profile, options } = this;
    this.firstFlag = this.lastFlag = await this.flag?.reader.read();
    this.startMs = this.lastSealMs = Date.now();
    const onAbort = (): void => this.stop('aborted', 'stopped by the user');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    const sampler = this.startSampler();
    const regressAtMs = this.fleet ? profile.demo?.regressAtMs : null;
    const regressTimer = typeof regressAtMs === 'number' ? setTimeout(() => this.regress(), regressAtMs) : undefined;
    // A backstop: every step is already cut to the time left, so this fires only when a step overruns.
    const deadlineMs = profile.durationMs + DEADLINE_GRACE_MS;
    const deadline = setTimeout(() => this.stop('duration', `duration ${profile.durationMs / 1000} s reached`), deadlineMs);
    let steps: StepResult[];
    try {
      steps = await this.runSteps();
    } finally {
      clearTimeout(deadline);
      clearTimeout(regressTimer);
      options.signal?.removeEventListener('abort', onAbort);
      await sampler.stop();
    }
    await this.sample(true); // the last, partial interval
    return this.result(steps);
  }

  /** Frees the recorder's histograms and closes the flag's Redis client. */
  close(): void {
    this.recorder.destroy();
    this.flag?.reader.close();
  }

  private elapsedS(): number {
    return (Date.now() - this.startMs) / 1000;
  }

  private event(kind: RunEvent['kind'], text: string): void {
    const e = { tS: Math.round(this.elapsedS() * 100) / 100, kind, text };
    this.events.push(e);
    this.options.onEvent?.(e);
  }

  private stop(reason: StopReason, text: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
    this.event('stop', text);
    this.current?.stop();
    this.stopping.abort();
  }

  /** The regression timer's work: v2 of the demo fleet turns slow and error-prone now. */
  private regress(): void {
    const text = this.fleet!.regress();
    this.regressAtS = this.elapsedS();
    this.event('regression', text);
  }

  /** The sampler: one timeline point every `monitor.everyMs` until stopped. */
  private startSampler(): { stop(): Promise<void> } {
    const everyMs = this.profile.monitor.everyMs;
    const done = new AbortController();
    const loop = (async () => {
      for (let next = this.startMs + everyMs; !done.signal.aborted; next += everyMs) {
        await sleep(next - Date.now(), done.signal);
        if (!done.signal.aborted) await this.sample();
      }
    })();
    return {
      stop: async () => {
        done.abort();
        await loop;
      },
    };
  }

  /**
   * Closes a sample interval into a timeline point, with the flag and the gate read at its end.
   * @param last the run's end: a sliver shorter than a quarter interval updates the flag but adds no point
   */
  private async sample(last = false): Promise<void> {
    const { profile, recorder, flag: watched, pollGate } = this;
    const nowMs = Date.now();
    const lengthS = Math.max(0.001, (nowMs - this.lastSealMs) / 1000);
    const sliver = last && lengthS * 1000 < profile.monitor.everyMs / 4;
    this.lastSealMs = nowMs;
    const interval = recorder.interval.seal();
    const [flag, gate] = await Promise.all([watched?.reader.read(), pollGate?.()]);
    const point: TimelinePoint = {
      tS: Math.round(((nowMs - this.startMs) / 1000) * 100) / 100,
      offeredRps: this.step.rateRps,
      achievedRps: Math.round(((interval.versions[ALL]?.requests ?? 0) / lengthS) * 10) / 10,
      versions: interval.versions,
      ...(watched ? { flag } : {}),
      ...(pollGate ? { gate } : {}),
    };
    if (!sliver) this.timeline.push(point);
    if (watched && flag !== undefined) this.watchFlag(flag, point.tS, !last);
    if (sliver) return;
    const { label: step, rateRps: offeredRps } = this.step;
    const progress = {
      elapsedS: point.tS,
      durationS: profile.durationMs / 1000,
      step,
      offeredRps,
      requests: recorder.requests,
      maxRequests: profile.maxRequests,
    };
    this.options.onPoint?.(point, progress);
  }

  /** The flag watch: the first turn to the rollback value is the rollback (and ends the run with `stopOnRollback`). */
  private watchFlag(flag: string | null, tS: number, mayStop: boolean): void {
    const { key, rollbackValue } = this.flag!;
    if (this.firstFlag === undefined) this.firstFlag = flag;
    if (this.rollback === null && flag === rollbackValue && this.lastFlag !== undefined && this.lastFlag !== flag) {
      this.rollback = { tS, flag };
      this.event('rollback', `${key} = ${flag}: rolled back (was ${this.lastFlag ?? 'unset'})`);
      if (mayStop && this.options.stopOnRollback) this.stop('rollback', `${key} = ${flag}: the run ends at the rollback`);
    }
    this.lastFlag = flag;
  }

  /** The steps, one after the other, each cut to the time and the requests left. */
  private async runSteps(): Promise<StepResult[]> {
    const { profile, recorder } = this;
    const steps: StepResult[] = [];
    for (const s of profile.steps) {
      const remainingMs = profile.durationMs - (Date.now() - this.startMs);
      if (this.stopped || remainingMs <= 0) break;
      this.step = s;
      this.event('step', `${s.label}: ${s.rateRps} rps for ${(s.durationMs / 1000).toFixed(1)} s`);
      const leftRequests = profile.maxRequests - recorder.requests;
      if (leftRequests <= 0) break;
      const stepMs = Math.min(s.durationMs, remainingMs);
      // autocannon lets each connection send its share of a second's rate when that second starts, and acts on the
      // end of a step only at its next sample: without a cap a step of N s could send N + 1 seconds' worth.
      const stepRequests = Math.min(leftRequests, Math.max(1, Math.round((s.rateRps * stepMs) / 1000)));
      const stepStartMs = Date.now();
      await this.runStep(s.rateRps, stepMs, stepRequests);
      // A step whose capped requests are all answered early holds its rate by waiting out its time.
      const restMs = stepStartMs + stepMs - Date.now();
      if (!this.stopped && restMs > 0) await sleep(restMs, this.stopping.signal);
      const span = recorder.step.seal();
      steps.push(stepResult(s.label, s.rateRps, (Date.now() - stepStartMs) / 1000, span.versions[ALL], span.counts));
    }
    return steps;
  }

  /** One autocannon run at `rateRps` for `stepMs`, at most `maxRequests`; every response goes to the recorder. */
  private async runStep(rateRps: number, stepMs: number, maxRequests: number): Promise<void> {
    const { profile, recorder, origin } = this;
    const counted = (): void => {
      if (recorder.requests >= profile.maxRequests) this.stop('max-requests', `maxRequests ${profile.maxRequests} reached`);
    };
    // autocannon's own result is not used: its latency is corrected for coordinated omission and it has no p95.
    await new Promise<void>((resolve, reject) => {
      const instance = autocannon(
        {
          url: origin,
          connections: Math.min(profile.connections, maxRequests),
          overallRate: rateRps,
          maxOverallRequests: maxRequests, // each connection stops at its share of the step's requests
          sampleInt: AUTOCANNON_SAMPLE_MS,
          duration: stepMs / 1000,
          timeout: profile.timeoutMs / 1000,
          requests: this.requests,
        },
        (err) => (err ? reject(err as Error) : resolve()),
      );
      this.current = instance;
      instance.on('response', (_client, statusCode: number, _bytes: number, responseTimeMs: number) => {
        recorder.response(this.tagged, statusCode, responseTimeMs);
        this.tagged = null;
        counted();
      });
      instance.on('reqError', () => {
        recorder.failure();
        counted();
      });
    });
    this.current = null;
  }

  private async result(steps: StepResult[]): Promise<LoadResult> {
    const { profile, recorder, origin, flag, fleet } = this;
    const totals = recorder.total.figures();
    const endS = this.elapsedS();
    const all = totals.versions[ALL];
    const offered = steps.reduce((sum, s) => sum + s.offeredRps * s.durationS, 0);
    const { name, description, durationMs, maxRequests, connections } = profile;
    return {
      schema: 'canary-gate/load-result/1',
      profile: { name, description, durationS: durationMs / 1000, maxRequests, connections },
      target: origin,
      startedAt: new Date(this.startMs).toISOString(),
      elapsedS: Math.round(endS * 100) / 100,
      stopReason: this.stopReason,
      steps,
      totals: {
        ...stepResult('total', endS > 0 ? Math.round(offered / endS) : 0, endS, all, totals.counts),
        maxMs: all?.maxMs ?? Number.NaN,
        errorRatio: all?.errorRatio ?? Number.NaN,
      },
      versions: Object.fromEntries(Object.entries(totals.versions).filter(([v]) => v !== ALL)),
      timeline: this.timeline,
      events: this.events,
      flag: flag && { key: flag.key, rollbackValue: flag.rollbackValue, first: this.firstFlag, last: this.lastFlag },
      rollback: this.rollback,
      demo: fleet && { regressAtS: this.regressAtS, routed: fleet.routed(), decision: this.rollback ? await readDecision(fleet) : null },
    };
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(Math.max(0, ms), undefined, { signal }).catch(() => undefined);
}

/** The fleet's decision record, parsed; null when there is none or Redis does not answer. */
async function readDecision(fleet: DemoFleet): Promise<unknown> {
  const text = await fleet.readDecision().catch(() => null);
  return text === null ? null : (JSON.parse(text) as unknown);
}
