/**
 * The demo: the main job on an embedded default. Two demo apps (v1 healthy, v2 that regresses on cue), a sidecar in
 * front of each, a router that splits traffic by the flag, autocannon driving load through the router. It starts a
 * rollout like an operator would (clears an earlier decision, sets the flag to 10), prints one line per evaluation,
 * injects the regression, and ends when the flag is written: exit 0 on rollback, 1 when none came in time.
 * With `healthy`, nothing regresses and success is the absence of a rollback for the whole duration.
 */
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { buildSidecar, type Sidecar } from '../app/sidecar.ts';
import type { EvaluationEvent } from '../app/evaluator.ts';
import { loadConfig } from '../config/load.ts';
import { serviceKeys } from '../core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { createLogger } from '../config/logger.ts';
import { createDemoApp, HEALTHY, REGRESSED } from './demo-app.ts';
import { findRedis } from './find-redis.ts';
import { createDemoRouter } from './router.ts';

export const DEMO_CONFIG = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

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

export const DEMO_DEFAULTS = { healthy: false, durationS: 75, regressAtS: 20, rate: 200, startPercentage: 10 } as const;

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
  const redisFound = await findRedis(options.env);
  print(`redis: ${redisFound.url} (${redisFound.origin})`);
  const cleanup: Array<() => Promise<unknown>> = [() => redisFound.stop()];
  try {
    return await runWithRedis(options, redisFound.url, cleanup);
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  }
}

async function runWithRedis(options: DemoOptions, redisUrl: string, cleanup: Array<() => Promise<unknown>>): Promise<number> {
  const { print } = options;
  const apps = { v1: createDemoApp('v1', HEALTHY, 11), v2: createDemoApp('v2', HEALTHY, 22) };
  const appPorts = { v1: await apps.v1.listen(), v2: await apps.v2.listen() };
  cleanup.push(() => apps.v1.close(), () => apps.v2.close());

  // The policy may be tried from the environment (CANARY_GATE_POLICY_*); everything else is the demo's own.
  const policyEnv = Object.fromEntries(Object.entries(options.env).filter(([name]) => name.startsWith('CANARY_GATE_POLICY_')));
  const configFor = (version: 'v1' | 'v2') =>
    loadConfig({
      file: DEMO_CONFIG,
      env: { ...policyEnv, CANARY_GATE_LOG_LEVEL: options.env.CANARY_GATE_LOG_LEVEL ?? 'error', REDIS_URL: redisUrl, POD_NAME: `demo-${version}-0`, POD_VERSION: version, UPSTREAM_URL: `http://127.0.0.1:${appPorts[version]}`, PROXY_PORT: '0', ADMIN_PORT: '0' },
    });
  const config = configFor('v1');
  const keys = serviceKeys(config.redis.keyPrefix, config.service);

  // An operator starting a rollout: clear the previous run's decision and slots, set the canary's share.
  const control = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  cleanup.push(async () => control.disconnect());
  const stale = await control.keys(`${config.redis.keyPrefix}:{${config.service}}:slot:*`);
  if (stale.length > 0) await control.del(...stale);
  await control.del(keys.lease);
  const flags = new RedisFlagStore(control, keys, flagOptionsOf(config.flag));
  await flags.reset('canary-gate demo', 'demo starts a rollout', String(options.startPercentage), Date.now());
  print(`rollout started: ${config.flag.key} = ${options.startPercentage} (service ${config.service}, slot ${config.window.slot} ms x ${config.window.slots}, ${config.policy.consecutiveBreaches} consecutive breaches roll back)`);

  const startMs = Date.now();
  let regressedAtMs: number | null = null;
  let lastFlag: string | null = String(options.startPercentage);
  let rolledBackAtMs: number | null = null;
  const onEvaluation = (event: EvaluationEvent): void => {
    if (rolledBackAtMs === null) print(evaluationLine((Date.now() - startMs) / 1000, event, lastFlag));
  };
  const logger = createLogger(config.log.level, { service: config.service });
  const sidecars: Sidecar[] = [];
  const addresses: Record<string, number> = {};
  for (const version of ['v1', 'v2'] as const) {
    const sidecar = buildSidecar(configFor(version), { onEvaluation, logger: logger.child({ pod: `demo-${version}-0`, version }) });
    sidecars.push(sidecar);
    cleanup.push(() => sidecar.close());
    addresses[version] = (await sidecar.start()).proxyPort;
  }
  const router = createDemoRouter(control, config.flag.key, `http://127.0.0.1:${addresses.v1}`, `http://127.0.0.1:${addresses.v2}`);
  const routerPort = await router.listen();
  cleanup.push(() => router.close());
  print(`demo apps behind sidecars: v1 :${addresses.v1}, v2 :${addresses.v2}; router :${routerPort}; load ${options.rate} rps for at most ${options.durationS} s`);

  let loadEnded: () => void = () => undefined;
  const loadDone = new Promise<void>((resolve) => (loadEnded = resolve));
  const load = autocannon({ url: `http://127.0.0.1:${routerPort}/api/items`, connections: 20, overallRate: options.rate, duration: options.durationS }, () => loadEnded());
  cleanup.push(async () => {
    load.stop();
    await loadDone;
  });

  const regressTimer = options.healthy
    ? null
    : setTimeout(() => {
        apps.v2.regress(REGRESSED);
        regressedAtMs = Date.now();
        print(`[${((regressedAtMs - startMs) / 1000).toFixed(1).padStart(5)} s] >>> v2 regresses now: median ${REGRESSED.medianMs} ms (was ${HEALTHY.medianMs}), ${REGRESSED.errorRatio * 100} % errors`);
      }, options.regressAtS * 1000);
  cleanup.push(async () => regressTimer && clearTimeout(regressTimer));

  // Watch the flag until it says rollback or the load ends.
  let finished = false;
  void loadDone.then(() => (finished = true));
  while (!finished) {
    await new Promise((r) => setTimeout(r, 100));
    lastFlag = await control.get(config.flag.key).catch(() => lastFlag);
    if (lastFlag === config.flag.rollbackValue) {
      rolledBackAtMs = Date.now();
      break;
    }
  }

  const routed = router.routed;
  if (rolledBackAtMs === null) {
    print(`no rollback in ${options.durationS} s; requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`);
    return options.healthy ? 0 : 1;
  }
  const decision = await control.get(keys.decision);
  print('');
  print(`ROLLED BACK: ${config.flag.key} = ${lastFlag} in redis`);
  print(`decision record (${keys.decision}):`);
  print(JSON.stringify(JSON.parse(decision ?? 'null'), null, 2));
  if (regressedAtMs !== null) print(`seconds from regression to flag: ${((rolledBackAtMs - regressedAtMs) / 1000).toFixed(1)}`);
  print(`requests routed: v1 ${routed.baseline}, v2 ${routed.canary}`);
  return options.healthy ? 1 : 0;
}
