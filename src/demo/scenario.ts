/**
 * The demo: the load runner (src/load/run.ts) on a profile like loadtests/canary-regression.yaml, and a printer. The
 * runner starts the demo fleet (v1 healthy, v2 that regresses on cue, a sidecar in front of each, `canary-gate route`
 * splitting traffic by the flag); the demo then starts a rollout of the demo's short plan (10 -> 25 -> 50 -> 100 %) as
 * an operator would with `canary-gate rollout start`, and the lease holder promotes it on evidence.
 *
 * By default v2 regresses when the rollout reaches `regressAtWeight` (25 %): the gate rolls it back, the rollout is
 * rolled_back and the run ends at the flag's rollback (exit 0; 1 when no rollback came in time). With `healthy`,
 * nothing regresses and success is the rollout completing at 100 % (exit 0; 1 when it did not in time). The printer
 * shows one line per evaluation, each rollout transition, and the time spent at each weight.
 */
import type { EvaluationEvent } from '../app/evaluator.ts';
import type { RolloutState } from '../core/rollout.ts';
import { withoutCredentials } from '../config/logger.ts';
import { profileFrom, type LoadProfile } from '../load/profile.ts';
import { runProfile } from '../load/run.ts';
import { fixed } from '../load/table.ts';
import type { DemoFleet } from './fleet.ts';

export interface DemoOptions {
  /** No regression; pass = the rollout completes within `durationS`. */
  readonly healthy: boolean;
  /** Seconds of load at most (the demo ends earlier on rollback or completion). */
  readonly durationS: number;
  /** The rollout weight (percent) at which v2 regresses. */
  readonly regressAtWeight: number;
  /**
   * Without a rollout: seconds into the load when v2 regresses, the flag staying at `startPercentage` (the detection
   * benchmark's setting). Absent: the demo runs a rollout.
   */
  readonly regressAtS?: number;
  /** Offered load through the router, requests per second. */
  readonly rate: number;
  /** Canary share before the rollout starts, percent (the fleet's flag until `rollout start` sets the first weight). */
  readonly startPercentage: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly print: (line: string) => void;
}

/**
 * The demo's rollout, short enough to finish within about 90 s: 10 -> 25 -> 50 -> 100 %, at least 8 s at each weight
 * (the 10 s window turns over within about that, so each weight is judged on its own traffic). The promotions still
 * wait for the evidence of the production policy but two fields: the baseline's error ratio counts as at least 3 %
 * (policy.errors.baselineFloor, default 0.1 %). At the demo apps' 0.1 % errors, proving the canary is not 2 x worse
 * takes minutes of canary traffic (`canary-gate rollout status` says so); with the floor, the relative error check
 * needs about as many canary requests as the absolute checks (about a thousand). v2's regression (10 % errors,
 * p95 x 2.5) is far past either. Each is overridden by its CANARY_GATE_* variable; the
 * detection benchmark's runs without a rollout (`regressAtS`) keep the production policy whole.
 */
export const DEMO_ROLLOUT = {
  CANARY_GATE_ROLLOUT_STEPS: '10,25,50,100',
  CANARY_GATE_ROLLOUT_MIN_STEP_TIME: '8s',
  CANARY_GATE_POLICY_ERRORS_BASELINE_FLOOR: '0.03',
  // Every part of the demo shares one Node process on the machine: a pause of it (GC, a busy core) slows a whole slot of
  // the canary's requests at once, and at 50 % that one slot can carry the relative p95 statistic past its threshold.
  // A breach must hold 2 s (two slots) to fail; v2's regression holds.
  CANARY_GATE_POLICY_FOR_LATENCY_P95_RELATIVE: '2s',
} as const;

/** The demo's load profile: canary-regression.yaml with the demo's rate, duration and regression. */
export function demoProfile(options: DemoOptions): LoadProfile {
  const { rate, durationS, startPercentage, healthy, regressAtS } = options;
  const profile = profileFrom(
    {
      name: 'demo',
      connections: 20,
      rate,
      duration: durationS * 1000,
      requests: [{ path: '/api/items' }],
      // The flag is read every 100 ms: the time from regression to flag is measured to a tenth of a second.
      monitor: { every: 100 },
      demo: { startPercentage, regressAt: healthy || regressAtS === undefined ? undefined : regressAtS * 1000 },
    },
    'demo',
  );
  // In a rollout the regression comes from the rollout's weight (runDemo), not from a timer.
  return healthy || regressAtS === undefined ? { ...profile, demo: { startPercentage, regressAtMs: null } } : profile;
}

/** One line per evaluation: both versions' p95 and error ratio, the verdict, the controller's state and the flag. */
export function evaluationLine(elapsedS: number, event: EvaluationEvent, flag: string | null): string {
  const t = `[${elapsedS.toFixed(1).padStart(5)} s]`;
  if (event.verdict === null) return `${t} evaluation inconclusive: ${event.error ?? 'unknown'}`;
  const side = (f: typeof event.verdict.baseline, width: number): string =>
    `${f.version} p95 ${fixed(f.p95Ms, 1, 6)} ms err ${fixed(f.errorRatio * 100, 2, 5)} % (${String(f.requests).padStart(width)} req)`;
  const { outcome, baseline, canary } = event.verdict;
  const { phase, consecutiveBreaches } = event.state;
  return `${t} ${side(baseline, 5)} | ${side(canary, 4)} | ${outcome.padEnd(12)} ${phase.padEnd(11)} breaches ${consecutiveBreaches} flag ${flag ?? '-'}`;
}

/** The lines that open the demo, once the fleet is up. */
function startLines(fleet: DemoFleet, options: DemoOptions): string[] {
  const { config, ports } = fleet;
  const { consecutiveBreaches: n } = config.policy;
  const rule = n === 1 ? 'the first failing evaluation rolls back' : `${n} consecutive breaches roll back`;
  const regress = options.healthy ? 'v2 stays healthy' : `v2 regresses at the ${options.regressAtWeight} % step`;
  return [
    `redis: ${withoutCredentials(fleet.redisUrl)} (${fleet.redisOrigin})`,
    `service ${config.service}: slot ${config.window.slot} ms x ${config.window.slots}, ${rule}; flag ${config.flag.key}`,
    `demo apps behind sidecars: v1 :${ports.v1}, v2 :${ports.v2}; canary-gate route :${ports.router}; load ${options.rate} rps for at most ${options.durationS} s; ${regress}`,
  ];
}

const stamp = (s: number): string => `[${s.toFixed(1).padStart(5)} s]`;

/** A rollout transition as one line: what, from and to which weight, and the evidence behind an automatic promotion. */
export function transitionLine(elapsedS: number, state: RolloutState): string {
  const r = state.last;
  const weights = r.fromWeight === null || r.fromWeight === r.toWeight ? `at ${r.toWeight} %` : `${r.fromWeight} % -> ${r.toWeight} %`;
  const e = r.evidence;
  const evidence =
    e === null
      ? ''
      : ` (${e.canaryRequests} canary requests, ${e.requiredRequests ?? '?'} needed; ${fixed(e.atWeightMs / 1000, 1)} s at the weight)`;
  return `${stamp(elapsedS)} >>> rollout ${r.kind} ${weights} by ${r.actor}${evidence}`;
}

/** The rollout's evidence at the lease holder's latest evaluation, for the end of an evaluation line. */
function evidenceText(state: RolloutState | null): string {
  const e = state?.evidence;
  if (state === null || state.status !== 'progressing' || e === null || e === undefined) return '';
  const needed = e.stillNeeded === null ? 'cannot be gathered at this traffic' : `${e.stillNeeded} more canary requests`;
  return ` | ${state.weight} %: ${needed}`;
}

/** Runs the demo. Resolves to the exit code (0 success, 1 not within the time limit). Throws CG_DEMO_NO_REDIS. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { print } = options;
  const startMs = Date.now();
  const elapsedS = (): number => (Date.now() - startMs) / 1000;
  let flag: string | null = String(options.startPercentage);
  let ended = false;
  let fleet: DemoFleet | null = null;
  let revision = 0;
  let regressedAtS: number | null = null;
  let completed = false;
  /** When each weight was reached, s since the start: the per-step times printed at the end. */
  const reached: Array<{ weight: number; atS: number }> = [];
  const finish = new AbortController();

  const followRollout = (): void => {
    const state = fleet?.rollout() ?? null;
    if (state === null || state.revision <= revision) return;
    revision = state.revision;
    print(transitionLine(elapsedS(), state));
    if (state.last.toWeight !== reached[reached.length - 1]?.weight) reached.push({ weight: state.last.toWeight, atS: elapsedS() });
    if (!options.healthy && regressedAtS === null && state.weight >= options.regressAtWeight && state.status === 'progressing') {
      print(`${stamp(elapsedS())} >>> ${fleet!.regress()}`);
      regressedAtS = elapsedS();
    }
    if (state.status === 'completed') {
      completed = true;
      ended = true;
      finish.abort();
    }
  };

  const result = await runProfile(demoProfile(options), {
    env: options.regressAtS === undefined ? { ...DEMO_ROLLOUT, ...options.env } : options.env,
    stopOnRollback: true,
    signal: finish.signal,
    fleet: {
      actor: 'canary-gate demo',
      onStart: (started) => {
        fleet = started;
        for (const line of startLines(started, options)) print(line);
        if (options.regressAtS !== undefined) return;
        void started.startRollout('canary-gate demo', 'the demo starts a rollout').then((r) => {
          if (r.outcome === 'refused') print(`rollout start refused: ${r.reason}`);
        });
      },
      onEvaluation: (event) => {
        if (ended) return;
        print(`${evaluationLine(elapsedS(), event, flag)}${evidenceText(fleet?.rollout() ?? null)}`);
        followRollout();
      },
    },
    onPoint: (point) => {
      if (point.flag !== undefined) flag = point.flag;
    },
    onEvent: (event) => {
      if (event.kind === 'regression') {
        regressedAtS = elapsedS();
        print(`${stamp(regressedAtS)} >>> ${event.text}`);
      }
      if (event.kind === 'rollback') ended = true;
    },
  });
  followRollout();
  const { routed, decision } = result.demo!;
  const routedText = `requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`;
  const totalS = elapsedS();
  const steps = reached.map((r, i) => `${r.weight} % ${fixed((reached[i + 1]?.atS ?? totalS) - r.atS, 1)} s`).join(', ');
  print('');
  if (completed) {
    print(`ROLLOUT COMPLETED: ${result.flag!.key} = 100 in redis, ${fixed(totalS, 1)} s after the demo started`);
    print(`time per step: ${steps}`);
    print(routedText);
    return options.healthy ? 0 : 1;
  }
  if (result.rollback === null) {
    print(`no rollback and no completed rollout in ${options.durationS} s; time per step: ${steps}; ${routedText}`);
    return 1;
  }
  print(
    `ROLLED BACK: ${result.flag!.key} = ${result.rollback.flag} in redis; the rollout is rolled_back and stays so until a person starts another`,
  );
  print(`decision record (${fleet!.keys.decision}):`);
  print(JSON.stringify(decision ?? null, null, 2));
  if (regressedAtS !== null) print(`seconds from regression to flag: ${(result.rollback.tS - regressedAtS).toFixed(1)}`);
  print(`time per step: ${steps}`);
  print(routedText);
  return options.healthy ? 1 : 0;
}
