/**
 * Sidecars with real proxies, real upstreams and a real Redis, as the sidecar tests build them: a config for a pod of
 * a test service (short slots, thresholds only), a started pod, upstreams, a fleet of two baseline pods and a canary.
 * Everything started here is stopped after each test.
 */
import { request } from 'undici';
import { afterEach } from 'vitest';
import { buildSidecar, type Sidecar, type SidecarDeps } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { client, dropService, REDIS_URL, silent } from './redis.ts';
import { startUpstream, type Upstream } from './upstream.ts';

export const TOKEN = 'test-admin-token-0123456789abcdef0123';
/** What to stop after the test, last in first out: the tests that use these helpers push theirs here too, in order. */
export const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

/** The config of pod `pod` (version `version`) of a test service, forwarding to `upstream`; `extra` env on top. */
export function configFor(service: string, pod: string, version: string, upstream: string, extra: Record<string, string> = {}): Config {
  return loadConfig({
    env: {
      SERVICE_NAME: service,
      POD_NAME: pod,
      POD_VERSION: version,
      UPSTREAM_URL: upstream,
      REDIS_URL,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_REDIS_KEY_PREFIX: 'cg-test',
      CANARY_GATE_FLAG_KEY: `cg-test:flag:{${service}}`,
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_WINDOW_SLOTS: '8',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
      CANARY_GATE_EVALUATION_LEASE_TTL: '1s',
      CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
      CANARY_GATE_POLICY_MIN_SAMPLES: '20',
      CANARY_GATE_LOG_LEVEL: 'silent',
      // Thresholds only: these tests are about merging, leases and latches with a few dozen requests; the statistical
      // checks have their own tests (test/core/judge-statistics.test.ts) and run in the demo and fault tests.
      // With thresholds only, three failing evaluations in a row roll back (as Flagger's threshold does).
      CANARY_GATE_POLICY_STATISTICS_ENABLED: 'false',
      CANARY_GATE_POLICY_CONSECUTIVE_BREACHES: '3',
      ...extra,
    },
  });
}

export interface Pod {
  readonly sidecar: Sidecar;
  readonly proxy: string;
  readonly admin: string;
  readonly config: Config;
}

/** Builds and starts a sidecar (silent, the admin token set, `deps` on top), destroyed after the test. */
export async function startPod(config: Config, deps: SidecarDeps = {}): Promise<Pod> {
  const sidecar = buildSidecar(config, { logger: silent, adminToken: TOKEN, ...deps });
  const { proxyPort, adminPort } = await sidecar.start();
  cleanups.push(() => sidecar.destroy());
  return { sidecar, config, proxy: `http://127.0.0.1:${proxyPort}`, admin: `http://127.0.0.1:${adminPort}` };
}

/** An upstream answering every request with `status`, closed after the test. */
export async function upstream(status = 200): Promise<Upstream> {
  const u = await startUpstream((_req, res) => {
    res.writeHead(status);
    res.end('x');
  });
  cleanups.push(() => u.close());
  return u;
}

/** Sends `n` GET requests one after another; returns their statuses. */
export async function send(url: string, n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(`${url}/item/${i}`);
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  return statuses;
}

/** Two baseline pods (a, b: v1) and a canary pod (c: v2) whose upstream answers `canaryStatus`; the service's keys dropped after the test. */
export async function fleet(
  service: string,
  canaryStatus = 200,
  extra: Record<string, string> = {},
  deps: SidecarDeps = {},
): Promise<Pod[]> {
  const [u1, u2] = [await upstream(), await upstream(canaryStatus)];
  const redis = await client();
  cleanups.push(async () => {
    await dropService(redis, 'cg-test', service, `cg-test:flag:{${service}}`);
    redis.disconnect();
  });
  return [
    await startPod(configFor(service, 'a', 'v1', u1.url, extra), deps),
    await startPod(configFor(service, 'b', 'v1', u1.url, extra), deps),
    await startPod(configFor(service, 'c', 'v2', u2.url, extra), deps),
  ];
}

/** The pod that holds the evaluator lease now, if any. */
export const holderOf = (pods: Pod[]): Pod | undefined => pods.find((p) => p.sidecar.status().evaluator.holding);
