/**
 * A gate on a Redis Cluster or a Sentinel-managed primary, as the HA tests run it: two baseline sidecars and a canary
 * sidecar with real proxies and upstreams, short slots and thresholds only (three failing evaluations roll back), the
 * default flag key (`feature:{<service>}:v2_traffic_percentage`), and a load loop that records every status.
 */
import { request } from 'undici';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import type { EvaluationEvent } from '../../src/app/evaluator.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { silent, sleep } from '../helpers/redis.ts';
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

/** The first evaluation after `sinceMs` that judged (a verdict, not a Redis hold). */
export function verdictAfter(evaluations: readonly TimedEvaluation[], sinceMs: number): TimedEvaluation | undefined {
  return evaluations.find((e) => e.atMs > sinceMs && e.event.verdict !== null && e.event.error === null);
}
