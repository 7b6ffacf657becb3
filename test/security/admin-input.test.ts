/**
 * Admin input is checked before it reaches the flag or the audit stream (issue 15): the flag of a reset is an integer
 * percentage 0..100; `reason` and `actor` lose control and bidirectional-control characters; failed tokens are
 * rate-limited and their log lines sampled; a configured token shorter than 32 characters stops the start (exit 2).
 * A real sidecar on a real Redis, a real HTTP client.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { CanaryGateError } from '../../src/core/errors.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { cleanText, printable } from '../../src/core/text.ts';
import { AuthLimiter } from '../../src/metrics/auth-limiter.ts';
import { captureLogs, client, dropService, REDIS_URL, uniqueService } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const TOKEN = 'admin-input-4c1d9e0b7a2f58e3d6c1b0a9f8e7d6c5';
const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const service = uniqueService('admin-input');
const flagKey = `cg-input:flag:{${service}}`;
const keys = serviceKeys('cg-input', service);
const env = {
  SERVICE_NAME: service,
  POD_NAME: 'a',
  POD_VERSION: 'v2',
  REDIS_URL,
  PROXY_PORT: '0',
  ADMIN_PORT: '0',
  CANARY_GATE_PROXY_HOST: '127.0.0.1',
  CANARY_GATE_ADMIN_HOST: '127.0.0.1',
  CANARY_GATE_REDIS_KEY_PREFIX: 'cg-input',
  CANARY_GATE_FLAG_KEY: flagKey,
  CANARY_GATE_EVALUATION_ENABLED: 'false',
};
const logs = captureLogs('info');
let redis: Redis;
let app: Upstream;
let sidecar: Sidecar;
let admin: string;

beforeAll(async () => {
  redis = await client();
  app = await startUpstream();
  sidecar = buildSidecar(loadConfig({ env: { ...env, UPSTREAM_URL: app.url } }), { logger: logs.logger, adminToken: TOKEN });
  admin = `http://127.0.0.1:${(await sidecar.start()).adminPort}`;
});

afterAll(async () => {
  await sidecar?.destroy();
  await app?.close();
  await dropService(redis, 'cg-input', service, flagKey);
  redis?.disconnect();
});

async function post(path: string, body: unknown, token = TOKEN) {
  const res = await request(`${admin}${path}`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

describe('POST /reset', () => {
  it.each([
    ['NaN; DROP', 'NaN; DROP'],
    ['a negative number', -5],
    ['1e+308', '1e+308'],
    ['a number past 100', 101],
    ['a fraction', 2.5],
    ['15,000 digits', '7'.repeat(15_000)],
    ['a boolean', true],
  ])('refuses a flag that is not an integer 0..100 (%s) with 400, and writes nothing', async (_name, flag) => {
    await redis.set(flagKey, '7');
    const r = await post('/reset', { reason: 'r', actor: 'a', flag });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).error).toMatch(/^flag must be an integer percentage 0\.\.100/);
    expect(r.body.length).toBeLessThan(200);
    expect(await redis.get(flagKey)).toBe('7');
  });

  it('writes a weight given as a number or as text, as its integer text', async () => {
    expect((await post('/reset', { reason: 'r', flag: 25 })).status).toBe(200);
    expect(await redis.get(flagKey)).toBe('25');
    expect((await post('/reset', { reason: 'r', flag: ' 30 ' })).status).toBe(200);
    expect(await redis.get(flagKey)).toBe('30');
  });

  it('stores reason and actor without control or bidi characters', async () => {
    const reason = 'fixed\u001b[2J\nautomatic rollback at 1999 by admin\u202e\u2066done\u0007';
    const r = await post('/reset', { reason, actor: 'eve\r\n\u009b31m', flag: 5 });
    expect(r.status).toBe(200);
    const entries = await redis.xrange(keys.audit, '-', '+');
    const fields = entries.at(-1)![1];
    expect(fields[fields.indexOf('reason') + 1]).toBe('fixed[2Jautomatic rollback at 1999 by admindone');
    expect(fields[fields.indexOf('actor') + 1]).toBe('eve31m@127.0.0.1');
    const marker = JSON.parse((await redis.get(keys.reset))!) as { reason: string; actor: string };
    expect(marker.reason).toBe('fixed[2Jautomatic rollback at 1999 by admindone');
  });
});

describe('failed tokens', () => {
  it('are refused with 429 once an address has used its burst, the right token too, with sampled log lines', async () => {
    const before = logs
      .text()
      .split('\n')
      .filter((l) => l.includes('admin request refused')).length;
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await post('/rollback', { reason: 'guess' }, `guess-${i}`)).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(11)).toEqual(Array(19).fill(429));
    const locked = await post('/rollback', { reason: 'real' });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect(await redis.get(keys.decision)).toBeNull();
    const after = logs
      .text()
      .split('\n')
      .filter((l) => l.includes('admin request refused')).length;
    expect(after - before).toBeLessThanOrEqual(2);
    expect(logs.text()).not.toContain('guess-');
  });

  it('come back one per second per address, and log one line per interval with what it left out', () => {
    let now = 0;
    const limiter = new AuthLimiter({ burst: 3, perSecond: 1, logEveryMs: 10_000, now: () => now });
    const sampled: Array<number | null> = [];
    for (let i = 0; i < 3; i++) {
      expect(limiter.retryAfterS('10.0.0.1')).toBe(0);
      limiter.failed('10.0.0.1');
      sampled.push(limiter.sample());
    }
    expect(limiter.retryAfterS('10.0.0.1')).toBe(1);
    expect(limiter.retryAfterS('10.0.0.2')).toBe(0);
    now = 1000;
    expect(limiter.retryAfterS('10.0.0.1')).toBe(0);
    expect(sampled).toEqual([0, null, null]);
    now = 10_000;
    expect(limiter.sample()).toBe(2);
  });

  it('from many addresses share one bucket of ten bursts', () => {
    const limiter = new AuthLimiter({ burst: 2, perSecond: 1, now: () => 0 });
    for (let i = 0; i < 20; i++) limiter.failed(`10.0.1.${i}`);
    expect(limiter.retryAfterS('10.0.9.9')).toBeGreaterThan(0);
  });
});

describe('the configured token', () => {
  it('is refused at build time when shorter than 32 characters, naming the variable', () => {
    const config = loadConfig({ env: { ...env, UPSTREAM_URL: 'http://127.0.0.1:9' } });
    let thrown: unknown;
    try {
      buildSidecar(config, { adminToken: 'short-token-1234' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CanaryGateError);
    expect((thrown as CanaryGateError).code).toBe('CG_CONFIG_INVALID');
    expect((thrown as CanaryGateError).details.join('\n')).toMatch(/CANARY_GATE_ADMIN_TOKEN: must be at least 32 characters \(got 16\)/);
  });

  it('stops `canary-gate run` with exit 2 and the reason', () => {
    const r = spawnSync(process.execPath, [MAIN, 'run'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', ...env, UPSTREAM_URL: 'http://127.0.0.1:9', CANARY_GATE_ADMIN_TOKEN: 'hunter2' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('CANARY_GATE_ADMIN_TOKEN: must be at least 32 characters (got 7)');
    expect(r.stderr).not.toContain('hunter2');
  });
});

describe('the CLI and the config', () => {
  it('`canary-gate reset --flag` takes an integer 0..100 only (exit 2 otherwise, nothing written)', async () => {
    await redis.set(flagKey, '9');
    const r = spawnSync(process.execPath, [MAIN, 'reset', '--flag', 'NaN; DROP', '--reason', 'x'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('must be an integer percentage 0..100');
    expect(await redis.get(flagKey)).toBe('9');
  });

  it('refuses a flag.rollbackValue that is not a weight', () => {
    expect(() => loadConfig({ env: { ...env, CANARY_GATE_FLAG_ROLLBACK_VALUE: 'off' } })).toThrow(CanaryGateError);
    expect(loadConfig({ env: { ...env, CANARY_GATE_FLAG_ROLLBACK_VALUE: '0' } }).flag.rollbackValue).toBe('0');
  });

  it('cleans text by code points and shows what it keeps of control characters as escapes', () => {
    expect(cleanText('a\u0000b\u200fc😀d', 4)).toBe('abc😀');
    expect(printable('a\u001bb\u2067')).toBe('a\\u001bb\\u2067');
  });
});
