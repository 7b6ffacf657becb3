/** `canary-gate route` as an operator runs it: a child process that prints where it listens, routes, and drains on SIGTERM. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Redis } from '../../src/fleet/redis-client.ts';
import { client, dropService, eventually, REDIS_URL, uniqueService } from '../helpers/redis.ts';
import { get } from '../helpers/router.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const service = uniqueService('route-cli');
const flagKey = `{${service}}:v2_traffic_percentage`;
let redis: Redis;
let baseline: Upstream;
let canary: Upstream;

beforeAll(async () => {
  redis = await client();
  await redis.set(flagKey, '100');
  baseline = await startUpstream((_req, res) => res.end('v1'));
  canary = await startUpstream((_req, res) => res.end('v2'));
});

afterAll(async () => {
  await dropService(redis, 'canary-gate', service, flagKey);
  redis.disconnect();
  await Promise.all([baseline.close(), canary.close()]);
});

it('prints its ports and weight, follows the flag, and exits 0 after draining on SIGTERM', async () => {
  const env = {
    PATH: process.env.PATH ?? '',
    REDIS_URL,
    SERVICE_NAME: service,
    CANARY_GATE_FLAG_KEY: flagKey,
    CANARY_GATE_LOG_LEVEL: 'warn',
    CANARY_GATE_ROUTER_HOST: '127.0.0.1',
    CANARY_GATE_ROUTER_PORT: '0',
    CANARY_GATE_ROUTER_ADMIN_HOST: '127.0.0.1',
    CANARY_GATE_ROUTER_ADMIN_PORT: '0',
    CANARY_GATE_ROUTER_BASELINE_UPSTREAM: baseline.url,
    CANARY_GATE_ROUTER_CANARY_UPSTREAM: canary.url,
  };
  const child = spawn(process.execPath, [MAIN, 'route'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const line = await eventually(() => /:(\d+) -> .*weight 100 %; admin :(\d+)/.exec(stdout) ?? undefined, 20_000, 'the start line');
    expect(line[0]).toContain(`v1 ${baseline.url} | v2 ${canary.url}`);
    expect(await get(`http://127.0.0.1:${line[1]}/`)).toEqual({ status: 200, version: 'v2', body: 'v2' });
    expect((await get(`http://127.0.0.1:${line[2]}/readyz`)).status).toBe(200);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(stdout).toContain('SIGTERM: draining');
  expect(stderr).toBe('');
});
