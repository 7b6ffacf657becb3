/**
 * Who may change the flag: the mutating admin endpoints take a bearer token and refuse a missing or wrong one (401);
 * every change is logged and audited in Redis with who asked and why; neither the logs nor the read-only endpoints
 * (/status, /metrics, /healthz, /readyz) show the admin token or the Redis password.
 */
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { captureLogs } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const TOKEN = 'admin-tok-5d9e2b7c-0f1e2d3c4b5a69788796';
const PASSWORD = 'redis-pw-81c4aa';
const logs = captureLogs('info');
let server: Awaited<ReturnType<typeof startRedisServer>>;
let redis: Redis;
let app: Upstream;
let sidecar: Sidecar;
let admin: string;

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
  await redis.config('SET', 'requirepass', PASSWORD); // from here on, every client needs the password
  const url = server.url.replace('redis://', `redis://:${PASSWORD}@`);
  app = await startUpstream();
  const config = loadConfig({
    env: {
      SERVICE_NAME: 'admin-sec',
      POD_NAME: 'a',
      POD_VERSION: 'v2',
      UPSTREAM_URL: app.url,
      REDIS_URL: url,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_WINDOW_SLOTS: '8',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
    },
  });
  sidecar = buildSidecar(config, { logger: logs.logger, adminToken: TOKEN });
  admin = `http://127.0.0.1:${(await sidecar.start()).adminPort}`;
});

afterAll(async () => {
  await sidecar?.destroy();
  redis?.disconnect();
  await app?.close();
  await server?.stop();
});

async function post(path: string, body: unknown, authorization?: string): Promise<{ status: number; body: string }> {
  const res = await request(`${admin}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: authorization ? { authorization } : {},
  });
  return { status: res.statusCode, body: await res.body.text() };
}

it('refuses a change without the token or with a wrong one, and changes nothing', async () => {
  for (const authorization of [undefined, 'Bearer wrong-token', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN]) {
    expect((await post('/rollback', { reason: 'try' }, authorization)).status).toBe(401);
  }
  expect(await redis.get('feature:{admin-sec}:v2_traffic_percentage')).toBeNull();
  expect(logs.text()).toMatch(/admin request refused: bad or missing bearer token/);
});

it('logs and audits each change with who asked and why', async () => {
  const rollback = await post('/rollback', { reason: 'p99 pages at 3am', actor: 'alice' }, `Bearer ${TOKEN}`);
  expect(rollback.status).toBe(200);
  expect(await redis.get('feature:{admin-sec}:v2_traffic_percentage')).toBe('0');
  const reset = await post('/reset', { reason: 'fix deployed', actor: 'bob', flag: '5' }, `Bearer ${TOKEN}`);
  expect(reset.status).toBe(200);
  expect(await redis.get('feature:{admin-sec}:v2_traffic_percentage')).toBe('5');

  const lines = logs
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const requested = lines.filter((l) => typeof l.msg === 'string' && /^admin (rollback|reset) requested$/.test(l.msg));
  expect(requested.map((l) => [l.msg, l.actor, l.reason])).toEqual([
    ['admin rollback requested', 'alice@127.0.0.1', 'p99 pages at 3am'],
    ['admin reset requested', 'bob@127.0.0.1', 'fix deployed'],
  ]);
  const audit = await redis.xrange('canary-gate:{admin-sec}:audit', '-', '+');
  const entries = audit.map(([, fields]) =>
    Object.fromEntries(fields.reduce<string[][]>((acc, v, i) => (i % 2 ? acc : [...acc, [v, fields[i + 1]!]]), [])),
  );
  expect(entries.map((e) => [e.event, e.actor, e.reason])).toEqual([
    ['rollback', 'alice@127.0.0.1', 'manual rollback: p99 pages at 3am'],
    ['reset', 'bob@127.0.0.1', 'fix deployed'],
  ]);
});

it('shows neither the admin token nor the Redis password in the read-only endpoints or the logs', async () => {
  for (const path of ['/status', '/metrics', '/healthz', '/readyz']) {
    const res = await request(`${admin}${path}`);
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(PASSWORD);
  }
  expect(logs.text().length).toBeGreaterThan(0);
  expect(logs.text()).not.toContain(TOKEN);
  expect(logs.text()).not.toContain(PASSWORD);
});
