/**
 * Redis with a password and with an ACL user that may touch only canary-gate's keys: a sidecar connects through the
 * credentials in its URL, publishes its slots, judges and writes the rollback flag; a wrong password leaves the proxy
 * serving and counts Redis errors; neither /status nor the logs show the password.
 *
 * TLS: a redis-server listening only on a TLS port with a certificate from a throwaway CA (openssl, at test time);
 * `canary-gate rollback` reaches it through `rediss://` when the CA is trusted through NODE_EXTRA_CA_CERTS, and
 * refuses an untrusted certificate.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/find-redis.ts';
import { sleep } from '../helpers/redis.ts';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { captureLogs, eventually } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const PASSWORD = 'default-s3cret-pw';
const GATE_PASSWORD = 'gate-only-pw-7f3a';
let server: Awaited<ReturnType<typeof startRedisServer>>;
let admin: Redis;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

beforeAll(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url);
  // The ACL user canary-gate needs: its own keys (prefix and flag), its channel, and only the commands it sends
  // (directly and from its Lua scripts), plus what ioredis sends on connect (INFO for the ready check, PING).
  await admin.call(
    'ACL',
    'SETUSER',
    'gate',
    'on',
    `>${GATE_PASSWORD}`,
    'resetkeys',
    '~cg-acl:*',
    '~flag:acl:*',
    'resetchannels',
    '&cg-acl:*',
    '-@all',
    '+info',
    '+ping',
    '+hello',
    '+client|setname',
    '+hset',
    '+pexpire',
    '+hlen',
    '+hgetall',
    '+get',
    '+set',
    '+del',
    '+exists',
    '+incr',
    '+xadd',
    '+xrange',
    '+publish',
    '+multi',
    '+exec',
    '+eval',
    '+evalsha',
    '+script|load',
    // What the scripts run to read keys another client may have written without fetching them whole.
    '+type',
    '+strlen',
    '+hkeys',
    '+hstrlen',
    '+hget',
    '+pttl',
    '+getrange',
    '+mget',
    '+xrevrange',
    '+time',
  );
  await admin.call('ACL', 'SETUSER', 'default', 'on', `>${PASSWORD}`);
  // From here on, the default user needs the password too.
  await admin.auth(PASSWORD);
});
afterAll(async () => {
  admin.disconnect();
  await server.stop();
});

function configFor(url: string, pod: string, version: string, upstream: string) {
  return loadConfig({
    env: {
      SERVICE_NAME: 'acl',
      POD_NAME: pod,
      POD_VERSION: version,
      UPSTREAM_URL: upstream,
      REDIS_URL: url,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_REDIS_KEY_PREFIX: 'cg-acl',
      CANARY_GATE_FLAG_KEY: 'flag:acl:v2',
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_WINDOW_SLOTS: '8',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
      CANARY_GATE_EVALUATION_LEASE_TTL: '1s',
      CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
      CANARY_GATE_POLICY_MIN_SAMPLES: '20',
      CANARY_GATE_LOG_LEVEL: 'info',
    },
  });
}

const withAuth = (user: string, password: string): string => server.url.replace('redis://', `redis://${user}:${password}@`);

describe('Redis with credentials', () => {
  it('an ACL user limited to canary-gate keys and commands: slots published, the canary judged, the flag written', async () => {
    const ok = await startUpstream();
    const failing = await startUpstream((_req, res) => void res.writeHead(503).end('x'));
    cleanups.push(
      () => ok.close(),
      () => failing.close(),
    );
    await admin.set('flag:acl:v2', '10');
    const logs = captureLogs();
    const url = withAuth('gate', GATE_PASSWORD);
    const proxies: string[] = [];
    const admins: string[] = [];
    for (const [pod, version, upstream] of [
      ['a', 'v1', ok.url],
      ['b', 'v2', failing.url],
    ] as const) {
      const sidecar = buildSidecar(configFor(url, pod, version, upstream), { logger: logs.logger, adminToken: '' });
      const ports = await sidecar.start();
      cleanups.push(() => sidecar.destroy());
      proxies.push(`http://127.0.0.1:${ports.proxyPort}`);
      admins.push(`http://127.0.0.1:${ports.adminPort}`);
    }
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) await (await request(`${proxies[i % 2]}/`)).body.dump();
    })();
    await eventually(async () => ((await admin.get('flag:acl:v2')) === '0' ? true : undefined), 15_000, 'the flag written by the ACL user');
    loading = false;
    await load;
    expect(await admin.exists('cg-acl:{acl}:decision')).toBe(1);
    // The user really is limited: outside its keys it is refused.
    const gate = new Redis(url);
    cleanups.push(async () => gate.disconnect());
    await expect(gate.set('other:key', '1')).rejects.toThrow(/NOPERM/);
    await expect(gate.call('FLUSHALL')).rejects.toThrow(/NOPERM/);
    // No secret in /status or in the logs.
    for (const a of admins) {
      const status = await (await request(`${a}/status`)).body.text();
      expect(status).not.toContain(GATE_PASSWORD);
    }
    expect(logs.text().length).toBeGreaterThan(0);
    expect(logs.text()).not.toContain(GATE_PASSWORD);
  });

  it('the password of the default user, and a wrong one: the proxy serves, Redis errors are counted, nothing leaks', async () => {
    const ok = await startUpstream();
    cleanups.push(() => ok.close());
    const logs = captureLogs();
    const good = buildSidecar(configFor(withAuth('default', PASSWORD), 'c', 'v1', ok.url), { logger: logs.logger, adminToken: '' });
    const bad = buildSidecar(configFor(withAuth('default', 'wrong-pw-9c1e'), 'd', 'v1', ok.url), { logger: logs.logger, adminToken: '' });
    const [g, b] = [await good.start(), await bad.start()];
    cleanups.push(
      () => good.destroy(),
      () => bad.destroy(),
    );
    for (let i = 0; i < 20; i++) {
      expect((await request(`http://127.0.0.1:${b.proxyPort}/`)).statusCode).toBe(200);
      await (await request(`http://127.0.0.1:${g.proxyPort}/`)).body.dump();
    }
    await eventually(() => (good.status().publish.published > 0 ? true : undefined), 5000, 'slots published with the password');
    await eventually(
      () => (bad.status().redis.errors > 0 || bad.status().publish.failures > 0 ? true : undefined),
      5000,
      'redis errors counted',
    );
    expect(bad.status().publish.published).toBe(0);
    expect(logs.text()).toMatch(/WRONGPASS|invalid username-password/);
    expect(logs.text()).not.toContain('wrong-pw-9c1e');
    expect(logs.text()).not.toContain(PASSWORD);
    expect(JSON.stringify(bad.status())).not.toContain('wrong-pw-9c1e');
  });
});

describe('Redis over TLS (rediss://)', () => {
  it('is reached with a CA trusted through NODE_EXTRA_CA_CERTS, and refused without it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-tls-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
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
      '/CN=canary-gate test CA',
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
    const port = await freePort();
    const child = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--tls-cert-file',
        join(dir, 'server.pem'),
        '--tls-key-file',
        join(dir, 'server.key'),
        '--tls-ca-cert-file',
        join(dir, 'ca.pem'),
        '--tls-auth-clients',
        'no',
      ],
      { stdio: 'ignore' },
    );
    cleanups.push(async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    });
    const tlsAdmin = new Redis({
      host: '127.0.0.1',
      port,
      tls: { ca: readFileSync(join(dir, 'ca.pem')) },
      lazyConnect: true,
      maxRetriesPerRequest: 1,
    });
    tlsAdmin.on('error', () => undefined); // refused while redis-server starts: retried below
    cleanups.push(async () => tlsAdmin.disconnect());
    for (let i = 0; i < 50; i++) {
      if (
        await tlsAdmin.connect().then(
          () => true,
          () => false,
        )
      )
        break;
      await sleep(100);
    }
    await tlsAdmin.set('flag:tls', '25');
    const env = {
      PATH: process.env.PATH ?? '',
      REDIS_URL: `rediss://127.0.0.1:${port}`,
      SERVICE_NAME: 'tls',
      CANARY_GATE_FLAG_KEY: 'flag:tls',
      CANARY_GATE_REDIS_CONNECT_TIMEOUT: '1s',
    };
    const main = join(import.meta.dirname, '../../src/cli/main.ts');
    const refused = spawnSync(process.execPath, [main, 'rollback', '--reason', 'tls test'], { encoding: 'utf8', env, timeout: 30_000 });
    expect(refused.status).not.toBe(0);
    expect(await tlsAdmin.get('flag:tls')).toBe('25');
    const trusted = spawnSync(process.execPath, [main, 'rollback', '--reason', 'tls test'], {
      encoding: 'utf8',
      env: { ...env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
      timeout: 30_000,
    });
    expect(trusted.stderr).toBe('');
    expect(trusted.stdout).toBe('rolled back: flag:tls = 0\n');
    expect(await tlsAdmin.get('flag:tls')).toBe('0');
  });
});
