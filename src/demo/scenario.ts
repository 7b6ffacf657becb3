/**
 * The demo: the main job on an embedded default. Two demo apps (v1 healthy, v2 that regresses on cue), a sidecar in
 * front of each, a router that splits traffic by the flag, autocannon driving load through the router. It starts a
 * rollout like an operator would (clears an earlier decision, sets the flag to 10), prints one line per evaluation,
 * injects the regression, and ends when the flag is written: exit 0 on rollback, 1 when none came in time.
 * With `healthy`, nothing regresses and success is the absence of a rollback for the whole duration.
 */
import autocannon from 'autocannon';
import type { EvaluationEvent } from '../app/evaluator.ts';
import { DEMO_REGRESSION, startDemoFleet } from './fleet.ts';

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

const fmtMs = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(1).padStart(6)} ms` : '     - ms');
const fmtPct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(2).padStart(5)} %` : '    - %');

/** One line per evaluation: both versions' p95 and error ratio, the verdict and the controller's state. */
export function evaluationLine(elapsedS: number, event: EvaluationEvent, flag: string | null): string {
  const t = `[${elapsedS.toFixed(1).padStart(5)} s]`;
  if (event.verdict === null) return `${t} evaluation inconclusive: ${event.error ?? 'unknown'}`;
  const { baseline: b, canary: c } = event.verdict;
  return (
    `${t} ${b.version} p95 ${fmtMs(b.p95Ms)} err ${fmtPct(b.errorRatio)} (${String(b.requests).padStart(5)} req) | ` +
    `${c.version} p95 ${fmtMs(c.p95Ms)} err ${fmtPct(c.errorRatio)} (${String(c.requests).padStart(4)} req) | ` +
    `${event.verdict.outcome.padEnd(12)} ${event.state.phase.padEnd(11)} breaches ${event.state.consecutiveBreaches} flag ${flag ?? '-'}`
  );
}

/** Runs the demo. Resolves to the exit code (0 success, 1 not within the time limit). Throws CG_DEMO_NO_REDIS. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { print } = options;
  const startMs = Date.now();
  let lastFlag: string | null = String(options.startPercentage);
  let rolledBackAtMs: number | null = null;
  const onEvaluation = (event: EvaluationEvent): void => {
    if (rolledBackAtMs === null) print(evaluationLine((Date.now() - startMs) / 1000, event, lastFlag));
  };
  const fleet = await startDemoFleet({ env: options.env, startPercentage: options.startPercentage, actor: 'canary-gate demo', onEvaluation });
  const cleanup: Array<() => Promise<unknown>> = [() => fleet.close()];
  try {
    const { config, ports } = fleet;
    print(`redis: ${fleet.redisUrl} (${fleet.redisOrigin})`);
    print(`rollout started: ${config.flag.key} = ${options.startPercentage} (service ${config.service}, slot ${config.window.slot} ms x ${config.window.slots}, ${config.policy.consecutiveBreaches === 1 ? 'the first failing evaluation rolls back' : `${config.policy.consecutiveBreaches} consecutive breaches roll back`})`);
    print(`demo apps behind sidecars: v1 :${ports.v1}, v2 :${ports.v2}; router :${ports.router}; load ${options.rate} rps for at most ${options.durationS} s`);

    let loadEnded: () => void = () => undefined;
    const loadDone = new Promise<void>((resolve) => (loadEnded = resolve));
    const load = autocannon({ url: `${fleet.url}/api/items`, connections: 20, overallRate: options.rate, duration: options.durationS }, () => loadEnded());
    cleanup.push(async () => {
      load.stop();
      await loadDone;
    });

    let regressedAtMs: number | null = null;
    const regressTimer = options.healthy
      ? null
      : setTimeout(() => {
          fleet.regress();
          regressedAtMs = Date.now();
          const { from, to } = DEMO_REGRESSION;
          print(`[${((regressedAtMs - startMs) / 1000).toFixed(1).padStart(5)} s] >>> v2 regresses now: median ${to.medianMs} ms (was ${from.medianMs}), ${to.errorRatio * 100} % errors`);
        }, options.regressAtS * 1000);
    cleanup.push(async () => regressTimer && clearTimeout(regressTimer));

    // Watch the flag until it says rollback or the load ends.
    let finished = false;
    void loadDone.then(() => (finished = true));
    while (!finished) {
      await new Promise((r) => setTimeout(r, 100));
      lastFlag = await fleet.readFlag().catch(() => lastFlag);
      if (lastFlag === fleet.rollbackValue) {
        rolledBackAtMs = Date.now();
        break;
      }
    }

    const routed = fleet.routed();
    if (rolledBackAtMs === null) {
      print(`no rollback in ${options.durationS} s; requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`);
      return options.healthy ? 0 : 1;
    }
    const decision = await fleet.readDecision();
    print('');
    print(`ROLLED BACK: ${config.flag.key} = ${lastFlag} in redis`);
    print(`decision record (${fleet.keys.decision}):`);
    print(JSON.stringify(JSON.parse(decision ?? 'null'), null, 2));
    if (regressedAtMs !== null) print(`seconds from regression to flag: ${((rolledBackAtMs - regressedAtMs) / 1000).toFixed(1)}`);
    print(`requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`);
    return options.healthy ? 1 : 0;
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  }
}
