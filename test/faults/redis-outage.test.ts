/**
 * Fail open on the traffic path: a private redis-server is paused (SIGSTOP) and later killed and restarted empty
 * while requests flow through two sidecars. No proxied request fails because of it, slots wait in the buffer and are
 * published when Redis is back, and the gate judges again afterwards.
 */
import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { eventually, silent } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

let redis: Awaited<ReturnType<typeof startRedisServer>>;
let app: Upstream;
const sidecars: Sidecar[] = [];
const proxies: string[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  app = await startUpstream();
  for (const [pod, version] of [
    ['a', 'v1'],
    ['b', 'v2'],
  ] as const) {
    const config = loadConfig({
      env: {
        SERVICE_NAME: 'outage',
        POD_NAME: pod,
        POD_VERSION: version,
        UPSTREAM_URL: app.url,
        REDIS_URL: redis.url,
        PROXY_PORT: '0',
        ADMIN_PORT: '0',
        CANARY_GATE_PROXY_HOST: '127.0.0.1',
        CANARY_GATE_ADMIN_HOST: '127.0.0.1',
        CANARY_GATE_WINDOW_SLOT: '250ms',
        CANARY_GATE_WINDOW_SLOTS: '20',
        CANARY_GATE_EVALUATION_DELAY: '100ms',
        CANARY_GATE_EVALUATION_LEASE_TTL: '1s',
        CANARY_GATE_REDIS_COMMAND_TIMEOUT: '200ms',
        CANARY_GATE_REDIS_CONNECT_TIMEOUT: '300ms',
        CANARY_GATE_POLICY_MIN_SAMPLES: '10',
      },
    });
    const sidecar = buildSidecar(config, { logger: silent });
    sidecars.push(sidecar);
    proxies.push(`http://127.0.0.1:${(await sidecar.start()).proxyPort}`);
  }
});

afterAll(async () => {
  for (const s of sidecars) await s.destroy();
  await app?.close();
  await redis?.stop();
});

/** Sends requests to both proxies, one after another, for `ms`; returns the statuses seen. */
async function load(ms: number): Promise<number[]> {
  const statuses: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (const url of proxies) {
      const res = await request(url);
      await res.body.dump();
      statuses.push(res.statusCode);
    }
  }
  return statuses;
}

it('keeps serving while Redis is paused, then publishes the buffered slots', async () => {
  await eventually(() => (sidecars.some((s) => s.status().latestVerdict !== null) ? true : undefined), 5000, 'a first evaluation');
  await load(500);
  redis.process.kill('SIGSTOP');
  const during = await load(2000);
  const buffered = sidecars.map((s) => s.status().publish.buffered);
  redis.process.kill('SIGCONT');
  const resumedAt = Date.now();
  expect(during.length).toBeGreaterThan(20);
  expect(during.every((s) => s === 200)).toBe(true);
  expect(Math.max(...buffered)).toBeGreaterThan(0);
  for (const s of sidecars) expect(s.status().redis.errors).toBeGreaterThan(0);
  await eventually(() => (sidecars.every((s) => s.status().publish.buffered === 0) ? true : undefined), 5000, 'the buffer drained');
  const failed = during.filter((s) => s !== 200).length;
  console.log(
    `redis paused 2 s: ${during.length} requests during the pause, ${failed} failed; buffered max ${Math.max(...buffered)} slots; drained ${((Date.now() - resumedAt) / 1000).toFixed(2)} s after SIGCONT`,
  );
  // The pause (2 s) is shorter than the window (20 x 250 ms): every buffered slot is still useful, none dropped.
  for (const s of sidecars) expect(s.status().publish.dropped).toBe(0);
});

it('keeps serving while Redis is down, and judges again once a fresh Redis is back on the same port', async () => {
  await redis.stop();
  const during = await load(1500);
  expect(during.every((s) => s === 200)).toBe(true);
  const restarted = await startRedisServer([], redis.port);
  redis = restarted;
  const backAt = Date.now();
  const before = Math.max(...sidecars.map((s) => s.status().evaluator.evaluations.pass ?? 0));
  await load(1500);
  await eventually(
    () => {
      const holder = sidecars.find((s) => s.status().evaluator.holding);
      return holder && (holder.status().evaluator.evaluations.pass ?? 0) > before ? true : undefined;
    },
    8000,
    'passing evaluations after the restart',
  );
  console.log(
    `redis stopped 1.5 s, restarted empty: ${during.length} requests while down, ${during.filter((s) => s !== 200).length} failed; judging again ${((Date.now() - backAt) / 1000).toFixed(2)} s after the restart`,
  );
});
