/**
 * The demo: the load runner (src/load/run.ts) on a profile like loadtests/canary-regression.yaml, and a printer. The
 * runner starts the demo fleet (v1 healthy, v2 that regresses on cue, a sidecar in front of each, a router that splits
 * traffic by the flag), which starts a rollout like an operator would (clears an earlier decision, sets the flag to
 * 10); it drives load through the router, injects the regression and ends when the flag is written. The printer shows
 * one line per evaluation, the regression and the decision record: exit 0 on rollback, 1 when none came in time.
 * With `healthy`, nothing regresses and success is the absence of a rollback for the whole duration.
 */
import type { EvaluationEvent } from '../app/evaluator.ts';
import { withoutCredentials } from '../config/logger.ts';
import { profileFrom, type LoadProfile } from '../load/profile.ts';
import { runProfile } from '../load/run.ts';
import { fixed } from '../load/table.ts';
import type { DemoFleet } from './fleet.ts';

export interface DemoOptions {
  /** No regression; pass = no rollback during `durationS`. */
  readonly healthy: boolean;
  /** Seconds of load at most (the demo ends earlier on rollback). */
  readonly durationS: number;
  /** Seconds after load starts when v2 regresses. */
  readonly regressAtS: number;
  /** Offered load through the router, requests per second. */
  readonly rate: number;
  /** Canary share the rollout starts at, percent. */
  readonly startPercentage: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly print: (line: string) => void;
}

/** The demo's load profile: canary-regression.yaml with the demo's rate, duration and regression. */
export function demoProfile(options: DemoOptions): LoadProfile {
  const { healthy, rate, durationS, regressAtS, startPercentage } = options;
  const profile = profileFrom(
    {
      name: 'demo',
      connections: 20,
      rate,
      duration: durationS * 1000,
      requests: [{ path: '/api/items' }],
      // The flag is read every 100 ms: the time from regression to flag is measured to a tenth of a second.
      monitor: { every: 100 },
      demo: { regressAt: healthy ? undefined : regressAtS * 1000, startPercentage },
    },
    'demo',
  );
  return healthy ? { ...profile, demo: { startPercentage, regressAtMs: null } } : profile;
}

/** One line per evaluation: both versions' p95 and error ratio, the verdict and the controller's state. */
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
  return [
    `redis: ${withoutCredentials(fleet.redisUrl)} (${fleet.redisOrigin})`,
    `rollout started: ${config.flag.key} = ${options.startPercentage} (service ${config.service}, slot ${config.window.slot} ms x ${config.window.slots}, ${rule})`,
    `demo apps behind sidecars: v1 :${ports.v1}, v2 :${ports.v2}; router :${ports.router}; load ${options.rate} rps for at most ${options.durationS} s`,
  ];
}

/** Runs the demo. Resolves to the exit code (0 success, 1 not within the time limit). Throws CG_DEMO_NO_REDIS. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { print } = options;
  const startMs = Date.now();
  const elapsedS = (): number => (Date.now() - startMs) / 1000;
  let flag: string | null = String(options.startPercentage);
  let rolledBack = false;
  let decisionKey = '';
  const result = await runProfile(demoProfile(options), {
    env: options.env,
    stopOnRollback: true,
    fleet: {
      actor: 'canary-gate demo',
      onStart: (fleet) => {
        decisionKey = fleet.keys.decision;
        for (const line of startLines(fleet, options)) print(line);
      },
      onEvaluation: (event) => {
        if (!rolledBack) print(evaluationLine(elapsedS(), event, flag));
      },
    },
    onPoint: (point) => {
      if (point.flag !== undefined) flag = point.flag;
    },
    onEvent: (event) => {
      if (event.kind === 'regression') print(`[${elapsedS().toFixed(1).padStart(5)} s] >>> ${event.text}`);
      if (event.kind === 'rollback') rolledBack = true;
    },
  });
  const { regressAtS, routed, decision } = result.demo!;
  const routedText = `requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`;
  if (result.rollback === null) {
    print(`no rollback in ${options.durationS} s; ${routedText}`);
    return options.healthy ? 0 : 1;
  }
  print('');
  print(`ROLLED BACK: ${result.flag!.key} = ${result.rollback.flag} in redis`);
  print(`decision record (${decisionKey}):`);
  print(JSON.stringify(decision ?? null, null, 2));
  if (regressAtS !== null) print(`seconds from regression to flag: ${(result.rollback.tS - regressAtS).toFixed(1)}`);
  print(routedText);
  return options.healthy ? 1 : 0;
}
