/**
 * A gate on a Redis Cluster or a Sentinel-managed primary, as the HA tests run it: two baseline sidecars and a canary
 * sidecar with real proxies and upstreams, short slots and thresholds only (three failing evaluations roll back), the
 * default flag key (`feature:{<service>}:v2_traffic_percentage`), a load loop that records every status, a router
 * that follows the flag, and the failover scenario both HA tests run.
 */
import { request } from 'undici';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import type { EvaluationEvent } from '../../src/app/evaluator.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { buildRouter, type Router } from '../../src/router/router.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import type { Redis } from '../../src/fleet/redis-client.ts';
import { eventually, silent, sleep } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

/** One evaluation a sidecar made as lease holder, with when it ended (ms since the epoch). */
export interface TimedEvaluation {
  readonly atMs: number;
  readonly pod: string;
  readonly event: EvaluationEvent;
}

export interface HaFleet {
  readonly sidecars: readonly Sidecar[];
  readonly proxies: readonly string[];
  readonly config: Config;
  readonly baselineApp: Upstream;
  readonly canaryApp: Upstream;
  readonly evaluations: TimedEvaluation[];
  /** Destroys the sidecars and closes the upstreams. */
  stop(): Promise<void>;
}

/** The config of one pod; `redisEnv` says where Redis is (REDIS_URL, CANARY_GATE_REDIS_MODE, ...). */
export function haConfig(service: string, pod: string, version: string, upstream: string, redisEnv: Record<string, string>): Config {
  return loadConfig({
    env: {
      SERVICE_NAME: service,
      POD_NAME: pod,
      POD_VERSION: version,
      UPSTREAM_URL: upstream,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_WINDOW_SLOTS: '8',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
      CANARY_GATE_EVALUATION_LEASE_TTL: '1s',
      CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
      CANARY_GATE_REDIS_CONNECT_TIMEOUT: '500ms',
      CANARY_GATE_POLICY_MIN_SAMPLES: '20',
      CANARY_GATE_POLICY_STATISTICS_ENABLED: 'false',
      CANARY_GATE_POLICY_CONSECUTIVE_BREACHES: '3',
      // These tests are about Redis, not latency: on two cores shared with other tests the proxies' p95 jitters past
      // 1.25 x, so the latency checks are set far off and the regression is an error one (the canary's app answers 500).
      CANARY_GATE_POLICY_LATENCY_RELATIVE_P95: '20',
      CANARY_GATE_POLICY_LATENCY_WARN_RELATIVE_P95: '0',
      CANARY_GATE_POLICY_LATENCY_ABSOLUTE_P95: '30s',
      CANARY_GATE_LOG_LEVEL: 'silent',
      ...(process.env.HA_DEBUG ? { CANARY_GATE_LOG_LEVEL: 'warn' } : {}),
      ...redisEnv,
    },
  });
}

/** Starts pods a, b (baseline v1) and c (canary v2); the canary's app answers 200 until the test swaps its handler. */
export async function startHaFleet(service: string, redisEnv: Record<string, string>): Promise<HaFleet> {
  const baselineApp = await startUpstream();
  const canaryApp = await startUpstream();
  const sidecars: Sidecar[] = [];
  const proxies: string[] = [];
  const evaluations: TimedEvaluation[] = [];
  const stop = async (): Promise<void> => {
    for (const s of sidecars) await s.destroy().catch(() => undefined);
    await baselineApp.close();
    await canaryApp.close();
  };
  let config: Config | undefined;
  try {
    for (const [pod, version, app] of [
      ['a', 'v1', baselineApp],
      ['b', 'v1', baselineApp],
      ['c', 'v2', canaryApp],
    ] as const) {
      config = haConfig(service, pod, version, app.url, redisEnv);
      const sidecar = buildSidecar(config, {
        logger: silent,
        onEvaluation: (event) => evaluations.push({ atMs: Date.now(), pod, event }),
      });
      sidecars.push(sidecar);
      proxies.push(`http://127.0.0.1:${(await sidecar.start()).proxyPort}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { sidecars, proxies, config: config!, baselineApp, canaryApp, evaluations, stop };
}

/** Load through every proxy from `concurrency` loops until `stop()`; each response's status is recorded. */
export function startLoad(proxies: readonly string[], concurrency = 4): { statuses: number[]; stop(): Promise<number[]> } {
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    let n = i;
    while (running) {
      const url = proxies[n++ % proxies.length]!;
      try {
        const res = await request(`${url}/item/${n}`);
        await res.body.dump();
        statuses.push(res.statusCode);
      } catch {
        statuses.push(0); // the proxy did not answer at all
      }
      await sleep(2);
    }
  });
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

/** Waits for the first passing verdict (both versions published and judged); the message lists what came instead. */
export async function passingVerdict(fleet: HaFleet, timeoutMs = 10_000): Promise<TimedEvaluation> {
  return eventually(() => fleet.evaluations.find((e) => e.event.verdict?.outcome === 'pass'), timeoutMs, 'a passing verdict').catch(
    (err: Error) => {
      const seen = fleet.evaluations.slice(-5).map((e) => e.event.error ?? `${e.event.verdict?.outcome}: ${e.event.verdict?.reason}`);
      throw new Error(
        `${err.message}; last evaluations: ${JSON.stringify(seen)}; sidecars: ${JSON.stringify(fleet.sidecars.map(stateOf))}`,
      );
    },
  );
}

/** What a sidecar's /status says about its Redis and its lease: for the message of a test that timed out. */
export function stateOf(sidecar: Sidecar): object {
  const st = sidecar.status();
  return {
    pod: st.pod,
    redis: st.redis.connection,
    holding: st.evaluator.holding,
    lastError: st.lastError,
    holds: st.evaluator.redisHolds,
  };
}

/** The first evaluation after `sinceMs` that judged (a verdict, not a Redis hold). */
export function verdictAfter(evaluations: readonly TimedEvaluation[], sinceMs: number): TimedEvaluation | undefined {
  return evaluations.find((e) => e.atMs > sinceMs && e.event.verdict !== null && e.event.error === null);
}

/**
 * `canary-gate route` in front of the fleet: the baseline's traffic to pod a, the canary's to pod c, by the flag. It
 * polls the flag only once a minute, so a change within a test reaches it through the gate's events (pub/sub).
 */
export async function startHaRouter(fleet: HaFleet, redisEnv: Record<string, string>): Promise<{ router: Router; url: string }> {
  const config = loadConfig({
    env: {
      SERVICE_NAME: fleet.config.service,
      CANARY_GATE_ROUTER_HOST: '127.0.0.1',
      CANARY_GATE_ROUTER_PORT: '0',
      CANARY_GATE_ROUTER_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_ROUTER_ADMIN_PORT: '0',
      CANARY_GATE_ROUTER_BASELINE_UPSTREAM: fleet.proxies[0]!,
      CANARY_GATE_ROUTER_CANARY_UPSTREAM: fleet.proxies[2]!,
      CANARY_GATE_ROUTER_POLL_INTERVAL: '60s',
      CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
      CANARY_GATE_REDIS_CONNECT_TIMEOUT: '500ms',
      CANARY_GATE_LOG_LEVEL: 'silent',
      ...redisEnv,
    },
    hostname: 'router',
  });
  const router = buildRouter(config, { logger: silent });
  const { port } = await router.start();
  return { router, url: `http://127.0.0.1:${port}` };
}

/** What a failover under load did, as the tests assert and print it. */
export interface FailoverRun {
  /** Requests answered from the kill until 100 requests after the next verdict, and how many of them were not 200. */
  readonly requestsDuring: number;
  readonly failedDuring: number;
  /** Seconds from the kill to the first evaluation after it that judged (a verdict, not a Redis hold). */
  readonly secondsToVerdict: number;
  /** Requests per second through the router over the whole run. */
  readonly rps: number;
  /** Rollback entries in the service's audit stream once the flag is 0. */
  readonly rollbacks: number;
  /** Rollback events a subscriber saw, and the router's weight and event-triggered flag reads at the end. */
  readonly events: readonly string[];
  readonly routerWeight: number | null;
  readonly routerEventReads: number;
  readonly routerRedis: { readonly mode: string; readonly connection: string };
}

/**
 * A rollout under load through a router (30 % to the canary, 70 % to pod a): waits for a passing verdict, runs `kill`
 * (the primary's death), waits for the next verdict, then makes the canary fail and waits until the flag is 0.
 * @param redis a client of the same Redis, for the flag, the audit stream and a subscription to the events
 */
export async function failoverUnderLoad(
  fleet: HaFleet,
  redis: Redis,
  subscriber: Redis,
  redisEnv: Record<string, string>,
  kill: () => Promise<void>,
  onRouter: (router: Router) => void,
): Promise<FailoverRun> {
  const keys = serviceKeys('canary-gate', fleet.config.service);
  await redis.set(fleet.config.flag.key, '30');
  const events: string[] = [];
  subscriber.on('message', (_channel: string, message: string) => events.push(JSON.parse(message).event));
  await subscriber.subscribe(keys.events);
  const { router, url } = await startHaRouter(fleet, redisEnv);
  onRouter(router);
  const startedMs = Date.now();
  // Only through the router, so the canary's share of requests is the flag's (the traffic-share check agrees).
  const load = startLoad([url]);
  try {
    await passingVerdict(fleet);
    const before = load.statuses.length;
    const killedMs = Date.now();
    await kill();
    const next = await eventually(() => verdictAfter(fleet.evaluations, killedMs), 30_000, 'a verdict after the failover').catch(
      (err: Error) => {
        throw new Error(`${err.message}; sidecars: ${JSON.stringify(fleet.sidecars.map(stateOf))}`);
      },
    );
    const answered = load.statuses.length;
    await eventually(() => (load.statuses.length > answered + 100 ? true : undefined), 10_000, 'requests after the failover');
    const during = load.statuses.slice(before);
    fleet.canaryApp.handle((_req, res) => {
      res.writeHead(500);
      res.end('boom');
    });
    await eventually(
      async () => ((await redis.get(fleet.config.flag.key).catch(() => null)) === '0' ? true : undefined),
      15_000,
      'the rollback',
    );
    await eventually(() => (router.status().weightPercent === 0 ? true : undefined), 5000, 'the router at 0 %');
    const statuses = await load.stop();
    const audit = await redis.xrange(keys.audit, '-', '+');
    return {
      requestsDuring: during.length,
      failedDuring: during.filter((s) => s !== 200).length,
      secondsToVerdict: (next.atMs - killedMs) / 1000,
      rps: statuses.length / ((Date.now() - startedMs) / 1000),
      rollbacks: audit.filter(([, fields]) => fields[fields.indexOf('event') + 1] === 'rollback').length,
      events,
      routerWeight: router.status().weightPercent,
      routerEventReads: router.status().reads.event ?? 0,
      routerRedis: router.status().redis,
    };
  } finally {
    await load.stop();
  }
}
