/**
 * Credentials in UPSTREAM_URL (`http://user:pass@host`) never reach a log line: not the start-up line that names the
 * upstream, not an upstream failure, not a debug line; nor /status or /metrics. The app is reached without them
 * (undici does not turn a URL's user and password into an Authorization header, and neither does the proxy).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { withoutCredentials } from '../../src/config/logger.ts';
import { captureLogs, REDIS_URL, uniqueService } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const USER = 'svc-user-3e1f';
const PASSWORD = 'upstream-pw-9b27c4';
const logs = captureLogs('debug');
let app: Upstream;
let sidecar: Sidecar;
let proxy = '';
let admin = '';
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  app = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.end('ok');
  });
  const config = loadConfig({
    env: {
      SERVICE_NAME: uniqueService('creds'),
      POD_NAME: 'a',
      POD_VERSION: 'v1',
      UPSTREAM_URL: app.url.replace('http://', `http://${USER}:${PASSWORD}@`),
      REDIS_URL,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_PROXY_CONNECT_TIMEOUT: '300ms',
    },
  });
  sidecar = buildSidecar(config, { logger: logs.logger, adminToken: '' });
  const ports = await sidecar.start();
  proxy = `http://127.0.0.1:${ports.proxyPort}`;
  admin = `http://127.0.0.1:${ports.adminPort}`;
});

afterAll(async () => {
  await sidecar.destroy();
  await app.close();
});

describe('credentials in UPSTREAM_URL', () => {
  it('reach neither the app nor a log line, /status or /metrics, through a success and an upstream failure', async () => {
    const ok = await request(`${proxy}/fine`);
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    expect(seen[0]?.authorization).toBeUndefined();

    await app.close(); // the app goes away: the proxy logs an upstream failure
    const failed = await request(`${proxy}/down`);
    expect(failed.statusCode).toBe(502);
    await failed.body.dump();

    const lines = logs
      .text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'canary-gate sidecar started')?.upstream).toBe(`${app.url.replace('http://', 'http://***@')}/`);
    expect(lines.some((l) => l.msg === 'upstream failure')).toBe(true);
    for (const path of ['/status', '/metrics']) {
      const res = await request(`${admin}${path}`);
      const text = await res.body.text();
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(USER);
    }
    expect(logs.text()).not.toContain(PASSWORD);
    expect(logs.text()).not.toContain(USER);
  });
});

describe('withoutCredentials', () => {
  it.each([
    ['http://u:p@127.0.0.1:3000', 'http://***@127.0.0.1:3000/'],
    ['https://only-user@app.internal/base', 'https://***@app.internal/base'],
    ['http://127.0.0.1:3000', 'http://127.0.0.1:3000'],
    ['not a url @ all', 'not a url @ all'],
    ['redis://gate:pw@node1:6379,node2:6379', 'redis://***@node1:6379,node2:6379'],
    ['redis+sentinel://:p@ss@s1:26379,s2:26379/primary', 'redis+sentinel://***@s1:26379,s2:26379/primary'],
    [42, 42],
  ])('%s -> %s', (value, expected) => {
    expect(withoutCredentials(value)).toBe(expected);
  });
});
