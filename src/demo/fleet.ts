/**
 * The demo fleet: two demo apps (v1 healthy, v2 that regresses on cue), a sidecar in front of each on
 * config/default.yaml, and a router that sends the flag's percentage of requests to v2. It carries no load of its own:
 * `canary-gate demo` drives it with autocannon, and `canary-gate load` with a profile that has a `demo` section.
 *
 * Starting it begins a rollout like an operator would: the previous run's slots, lease and decision are cleared and
 * the flag is set to the start percentage.
 */
import { fileURLToPath } from 'node:url';
import type { EvaluationEvent } from '../app/evaluator.ts';
import { buildSidecar, type Sidecar } from '../app/sidecar.ts';
import type { Config } from '../config/schema.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../config/logger.ts';
import { serviceKeys, type ServiceKeys } from '../core/keys.ts';
import type { Verdict } from '../core/verdict.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';
import { newest } from '../load/monitor.ts';
import { createDemoApp, HEALTHY, REGRESSED } from './demo-app.ts';
import { findRedis, type FoundRedis } from './find-redis.ts';
import { buildRouter } from '../router/router.ts';
import type { RolloutState } from '../core/rollout.ts';
import { rolloutStoreOf, stagesOf } from '../rollout/compose.ts';
import { RolloutControl, type ControlResult, type RolloutView } from '../rollout/control.ts';

/** The config every demo sidecar loads (the embedded default). */
export const DEMO_CONFIG = fileURLToPath(new URL('../../config/default.yaml', import.meta.url));

export interface DemoFleetOptions {
  /** REDIS_URL picks the Redis (else 127.0.0.1:6379, else a private redis-server); CANARY_GATE_POLICY_* try another policy. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Canary share the rollout starts at, percent 0..100. */
  readonly startPercentage: number;
  /** Who starts the rollout, for the reset's audit entry (e.g. `canary-gate demo`). */
  readonly actor: string;
  /** Called after every evaluation of either sidecar. */
  readonly onEvaluation?: (event: EvaluationEvent) => void;
}

export interface DemoFleet {
  /** The router's origin: where the load goes. */
  readonly url: string;
  readonly redisUrl: string;
  /** How the Redis was found (REDIS_URL, local, private redis-server). */
  readonly redisOrigin: FoundRedis['origin'];
  /** The v1 sidecar's config (the v2 one differs only in pod, version and upstream). */
  readonly config: Config;
  readonly keys: ServiceKeys;
  /** Proxy ports of the v1 and v2 sidecars and the router's port. */
  readonly ports: { readonly v1: number; readonly v2: number; readonly router: number };
  /** Turns v2 slow and error-prone (median 50 ms instead of 20, 10 % errors); returns a line that says so. */
  regress(): string;
  /** The decision record's raw JSON, or null when there is none. Throws on a Redis error. */
  readDecision(): Promise<string | null>;
  /** The newest verdict of whichever sidecar evaluates, or null before the first. */
  latestVerdict(): Verdict | null;
  /** Requests the router sent to each version so far. */
  routed(): { baseline: number; canary: number };
  /** Starts a rollout of the demo's plan, as `canary-gate rollout start` would. */
  startRollout(actor: string, reason: string): Promise<ControlResult>;
  /** The rollout as the lease holder last wrote it (null before a start is seen). */
  rollout(): RolloutState | null;
  /** The rollout as `canary-gate rollout status` shows it (reads Redis). */
  rolloutView(): Promise<RolloutView>;
  /** Stops the router, the sidecars (draining), the apps and a private Redis; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts the demo fleet.
 * @throws CanaryGateError CG_DEMO_NO_REDIS when no Redis can be found or started; CG_CONFIG_INVALID for a bad
 *   CANARY_GATE_POLICY_* value
 */
export async function startDemoFleet(options: DemoFleetOptions): Promise<DemoFleet> {
  const { env } = options;
  const cleanup: Array<() => Promise<unknown>> = [];
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    const found = await findRedis(env);
    cleanup.push(() => found.stop());
    const apps = { v1: createDemoApp('v1', HEALTHY, 11), v2: createDemoApp('v2', HEALTHY, 22) };
    const appPorts = { v1: await apps.v1.listen(), v2: await apps.v2.listen() };
    cleanup.push(
      () => apps.v1.close(),
      () => apps.v2.close(),
    );

    // The policy may be tried from the environment (CANARY_GATE_POLICY_*); everything else is the demo's own.
    const policyEnv = Object.fromEntries(Object.entries(env).filter(([name]) => /^CANARY_GATE_(POLICY|ROLLOUT)_/.test(name)));
    const configFor = (version: 'v1' | 'v2', extra: Record<string, string> = {}): Config =>
      loadConfig({
        file: DEMO_CONFIG,
        env: {
          ...policyEnv,
          ...extra,
          CANARY_GATE_LOG_LEVEL: env.CANARY_GATE_LOG_LEVEL ?? 'error',
          REDIS_URL: found.url,
          POD_NAME: `demo-${version}-0`,
          POD_VERSION: version,
          UPSTREAM_URL: `http://127.0.0.1:${appPorts[version]}`,
          PROXY_PORT: '0',
          ADMIN_PORT: '0',
        },
      });
    const config = configFor('v1');
    const keys = serviceKeys(config.redis.keyPrefix, config.service);
    const logger = createLogger(config.log.level, { service: config.service });

    // An operator starting a rollout: clear the previous run's decision and slots, set the canary's share.
    const control = createRedisClient(config.redis, logger);
    cleanup.push(async () => control.disconnect());
    await waitReady(control, config.redis.connectTimeout);
    const stale = await control.keys(`${config.redis.keyPrefix}:{${config.service}}:slot:*`);
    if (stale.length > 0) await control.del(...stale);
    await control.del(keys.lease, keys.rollout);
    await new RedisFlagStore(control, keys, flagOptionsOf(config.flag)).reset(
      options.actor,
      `${options.actor} starts a rollout`,
      String(options.startPercentage),
      Date.now(),
    );

    const sidecars: Sidecar[] = [];
    const ports = { v1: 0, v2: 0 };
    for (const version of ['v1', 'v2'] as const) {
      const sidecar = buildSidecar(configFor(version), {
        onEvaluation: options.onEvaluation,
        logger: logger.child({ pod: `demo-${version}-0`, version }),
      });
      sidecars.push(sidecar);
      cleanup.push(() => sidecar.close());
      ports[version] = (await sidecar.start()).proxyPort;
    }
    // canary-gate route, as a user without a mesh runs it: follows the flag by the gate's events and a poll.
    const router = buildRouter(
      configFor('v1', {
        CANARY_GATE_ROUTER_HOST: '127.0.0.1',
        CANARY_GATE_ROUTER_PORT: '0',
        CANARY_GATE_ROUTER_ADMIN_HOST: '127.0.0.1',
        CANARY_GATE_ROUTER_ADMIN_PORT: '0',
        CANARY_GATE_ROUTER_BASELINE_UPSTREAM: `http://127.0.0.1:${ports.v1}`,
        CANARY_GATE_ROUTER_CANARY_UPSTREAM: `http://127.0.0.1:${ports.v2}`,
        CANARY_GATE_ROUTER_POLL_INTERVAL: '200ms',
      }),
      { logger: logger.child({ pod: 'demo-router' }) },
    );
    const routerPort = (await router.start()).port;
    cleanup.push(() => router.close());
    const rolloutControl = new RolloutControl(rolloutStoreOf(config, control, keys), stagesOf(config));

    return {
      url: `http://127.0.0.1:${routerPort}`,
      redisUrl: found.url,
      redisOrigin: found.origin,
      config,
      keys,
      ports: { ...ports, router: routerPort },
      regress: () => {
        apps.v2.regress(REGRESSED);
        return `v2 regresses now: median ${REGRESSED.medianMs} ms (was ${HEALTHY.medianMs}), ${REGRESSED.errorRatio * 100} % errors`;
      },
      readDecision: () => control.get(keys.decision),
      latestVerdict: () => newest(sidecars.map((s) => s.status().latestVerdict)),
      routed: () => {
        const s = router.status();
        return { baseline: s.baseline.requests, canary: s.canary.requests };
      },
      startRollout: (actor, reason) => rolloutControl.apply('start', { actor, reason }),
      rollout: () =>
        sidecars
          .map((s) => s.status().rollout.state)
          .reduce<RolloutState | null>((a, b) => (b !== null && (a === null || b.revision > a.revision) ? b : a), null),
      rolloutView: () => rolloutControl.view(),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
