/**
 * Redis with credentials and TLS, on a private redis-server (Debian's build has TLS: `--tls-port` is accepted).
 *
 * - An ACL user that may run only the commands canary-gate sends (found in src/fleet, src/flag, src/app: HSET,
 *   PEXPIRE, HGETALL, GET, GETRANGE, SET, MULTI/EXEC, PUBLISH, XRANGE, INFO, and inside its Lua scripts GET, SET, DEL,
 *   EXISTS, INCR, PEXPIRE, XADD, PUBLISH, TIME, and TYPE, STRLEN, PTTL, HKEYS, HSTRLEN, HGET to read keys another
 *   client may have written without fetching them whole, through EVALSHA/EVAL) on its own keys (`~<prefix>:*` and the flag key) and channel:
 *   without the Lua commands, the sidecar still proxies and publishes its slots, and says NOPERM in /status.
 * - `canary-gate run` as a child process over `rediss://user:password@` with the test CA trusted through
 *   NODE_EXTRA_CA_CERTS (read at process start, hence the child): it publishes its slots over TLS; without the CA it
 *   serves every request, publishes nothing and logs the certificate error. Neither /status nor its output shows the
 *   password.
 *
 * The happy path of an ACL user writing the flag is in test/security/redis-auth.test.ts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { freePort, startRedisServer } from '../../src/demo/find-redis.ts';
import { eventually, silent, uniqueService } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const ADMIN_PASSWORD = 'adm-0c4e-secret';
const GATE_PASSWORD = 'gate-9b1d-secret';
const PREFIX = 'cg-auth';
const FLAG = 'flag:auth:v2';
/** What canary-gate sends, directly or from its Lua scripts, plus what ioredis sends on connect. */
const DIRECT = [
  '+info',
  '+ping',
  '+hello',
  '+hset',
  '+pexpire',
  '+hlen',
  '+hgetall',
  '+get',
  '+set',
  '+multi',
  '+exec',
  '+publish',
  '+xrange',
  '+getrange',
  '+mget',
  '+xrevrange',
];
const LUA = [
  '+eval',
  '+evalsha',
  '+script|load',
  '+del',
  '+exists',
  '+incr',
  '+xadd',
  '+type',
  '+strlen',
  '+pttl',
  '+hkeys',
  '+hstrlen',
  '+hget',
  '+time',
];

let dir = '';
let server: Awaited<ReturnType<typeof startRedisServer>>;
let tlsPort = 0;
let admin: Redis;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cg-redis-auth-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=canary-gate throwaway test CA',
  );
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'san.ext',
  );
  tlsPort = await freePort();
  // Plain port for the test's own client, TLS port for the sidecars.
  server = await startRedisServer([
    '--tls-port',
    String(tlsPort),
    '--tls-cert-file',
    join(dir, 'server.pem'),
    '--tls-key-file',
    join(dir, 'server.key'),
    '--tls-ca-cert-file',
    join(dir, 'ca.pem'),
    '--tls-auth-clients',
    'no',
  ]);
  admin = new Redis(server.url);
  const keys = ['resetkeys', `~${PREFIX}:*`, `~${FLAG}`, 'resetchannels', `&${PREFIX}:*`];
  await admin.call('ACL', 'SETUSER', 'gate', 'on', `>${GATE_PASSWORD}`, ...keys, '-@all', ...DIRECT, ...LUA);
  await admin.call('ACL', 'SETUSER', 'gate-no-lua', 'on', `>${GATE_PASSWORD}`, ...keys, '-@all', ...DIRECT);
  await admin.call('ACL', 'SETUSER', 'default', 'on', `>${ADMIN_PASSWORD}`);
  await admin.auth(ADMIN_PASSWORD);
});
afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function env(service: string, redisUrl: string, upstream: string): Record<string, string> {
  return {
    SERVICE_NAME: service,
    POD_NAME: `${service}-v1-0`,
    POD_VERSION: 'v1',
    UPSTREAM_URL: upstream,
    REDIS_URL: redisUrl,
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    CANARY_GATE_PROXY_HOST: '127.0.0.1',
    CANARY_GATE_ADMIN_HOST: '127.0.0.1',
    CANARY_GATE_REDIS_KEY_PREFIX: PREFIX,
    CANARY_GATE_FLAG_KEY: FLAG,
    CANARY_GATE_WINDOW_SLOT: '250ms',
    CANARY_GATE_WINDOW_SLOTS: '8',
    CANARY_GATE_EVALUATION_DELAY: '100ms',
    CANARY_GATE_EVALUATION_LEASE_TTL: '1s',
    CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
    CANARY_GATE_LOG_LEVEL: 'info',
  };
}

const slotKeys = (service: string): Promise<string[]> => admin.keys(`${PREFIX}:{${service}}:slot:*`);

describe('an ACL user without the Lua commands', () => {
  it('proxies and publishes its slots, takes no lease, and says NOPERM in /status', async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const service = uniqueService('nolua');
    const url = server.url.replace('redis://', `redis://gate-no-lua:${GATE_PASSWORD}@`);
    const sidecar = buildSidecar(loadConfig({ env: env(service, url, app.url) }), { logger: silent, adminToken: '' });
    const ports = await sidecar.start();
    cleanups.push(() => sidecar.destroy());
    for (let i = 0; i < 10; i++) expect((await request(`http://127.0.0.1:${ports.proxyPort}/`)).statusCode).toBe(200);
    await eventually(async () => ((await slotKeys(service)).length > 0 ? true : undefined), 5000, 'slots published by the restricted user');
    const status = await eventually(
      () => (sidecar.status().lastError?.includes('NOPERM') ? sidecar.status() : undefined),
      5000,
      'NOPERM in /status',
    );
    expect(status.evaluator.holding).toBe(false);
    expect(await admin.exists(`${PREFIX}:{${service}}:lease`)).toBe(0);
    expect(JSON.stringify(status)).not.toContain(GATE_PASSWORD);
  });
});

describe('a wrong password', () => {
  it('serves every request, counts the Redis errors, publishes nothing, and never shows the password', async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const service = uniqueService('wrongpw');
    const wrong = 'not-the-pw-5e2a';
    const url = server.url.replace('redis://', `redis://gate:${wrong}@`);
    const sidecar = buildSidecar(loadConfig({ env: env(service, url, app.url) }), { logger: silent, adminToken: '' });
    const ports = await sidecar.start();
    cleanups.push(() => sidecar.destroy());
    for (let i = 0; i < 10; i++) expect((await request(`http://127.0.0.1:${ports.proxyPort}/`)).statusCode).toBe(200);
    const status = await eventually(() => (sidecar.status().redis.errors > 0 ? sidecar.status() : undefined), 5000, 'redis errors counted');
    expect(status.publish.published).toBe(0);
    expect(status.local.requests).toBe(10);
    expect(await slotKeys(service)).toEqual([]);
    expect(JSON.stringify(status)).not.toContain(wrong);
  });
});

describe('canary-gate run over TLS with an ACL user (rediss://user:password@)', () => {
  /** Starts `canary-gate run`; resolves its ports from the first line, and its output so far. */
  async function run(
    extraEnv: Record<string, string>,
    service: string,
    upstream: string,
  ): Promise<{ child: ChildProcess; proxy: string; admin: string; output: () => string }> {
    const url = `rediss://gate:${GATE_PASSWORD}@127.0.0.1:${tlsPort}`;
    const child = spawn(process.execPath, [MAIN, 'run'], {
      env: { PATH: process.env.PATH ?? '', ...env(service, url, upstream), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const ports = await eventually(
      () => {
        const m = /proxy :(\d+) admin :(\d+)/.exec(out);
        if (m) return m;
        if (child.exitCode !== null) throw new Error(`canary-gate run exited ${child.exitCode}: ${out}`);
        return undefined;
      },
      15_000,
      'canary-gate run to listen',
    );
    return { child, proxy: `http://127.0.0.1:${ports[1]}`, admin: `http://127.0.0.1:${ports[2]}`, output: () => out };
  }

  it('with the CA trusted: slots published over TLS; the password in neither /status nor the output', async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const service = uniqueService('tls');
    const gate = await run({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') }, service, app.url);
    for (let i = 0; i < 10; i++) expect((await request(`${gate.proxy}/`)).statusCode).toBe(200);
    await eventually(async () => ((await slotKeys(service)).length > 0 ? true : undefined), 10_000, 'slots published over TLS');
    const status = await eventually(
      async () => {
        const s = (await (await request(`${gate.admin}/status`)).body.json()) as {
          publish: { published: number };
          evaluator: { holding: boolean };
          redis: { connection: string };
        };
        return s.publish.published > 0 && s.evaluator.holding ? s : undefined;
      },
      10_000,
      'published slots and the lease in /status',
    );
    expect(status.redis.connection).toBe('ready');
    expect(JSON.stringify(status)).not.toContain(GATE_PASSWORD);
    expect(gate.output()).not.toContain(GATE_PASSWORD);
  });

  it('without the CA: every request served, nothing published, the certificate error logged, no password shown', async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const service = uniqueService('tls-untrusted');
    const gate = await run({}, service, app.url);
    for (let i = 0; i < 10; i++) expect((await request(`${gate.proxy}/`)).statusCode).toBe(200);
    await eventually(
      () => (/"err":"self-signed certificate in certificate chain","msg":"redis error"/.test(gate.output()) ? true : undefined),
      10_000,
      'the certificate error in the log',
    );
    const status = (await (await request(`${gate.admin}/status`)).body.json()) as {
      publish: { published: number };
      local: { requests: number };
    };
    expect(status.local.requests).toBe(10);
    expect(status.publish.published).toBe(0);
    expect(await slotKeys(service)).toEqual([]);
    expect(JSON.stringify(status)).not.toContain(GATE_PASSWORD);
    expect(gate.output()).not.toContain(GATE_PASSWORD);
  });
});
