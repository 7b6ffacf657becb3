/**
 * Faults with real processes and real clocks:
 * - the evaluator killed with SIGKILL: another sidecar process takes the lease within two lease periods and keeps
 *   the latched rollback;
 * - the evaluator paused (SIGSTOP) past its lease and resumed: another has taken the lease with a larger fencing token
 *   and rolled back; after a reset the resumed process does not hold the lease and writes nothing;
 * - SIGTERM: the sidecar finishes the request in flight, publishes its last slot, releases the lease and exits 0;
 * - a pod whose clock runs 3 s ahead: its slots land in the future, the evaluator keeps judging, nothing crashes, and
 *   its requests are merged once the fleet's clock reaches them.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { freePort, startRedisServer } from '../../src/demo/find-redis.ts';
import { eventually, silent, sleep } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});
const redisServer = await startRedisServer();
afterAll(() => redisServer.stop());

const LEASE_TTL_MS = 1000;
const common = {
  REDIS_URL: redisServer.url,
  CANARY_GATE_PROXY_HOST: '127.0.0.1',
  CANARY_GATE_ADMIN_HOST: '127.0.0.1',
  CANARY_GATE_WINDOW_SLOT: '250ms',
  CANARY_GATE_WINDOW_SLOTS: '8',
  CANARY_GATE_EVALUATION_DELAY: '100ms',
  CANARY_GATE_EVALUATION_LEASE_TTL: `${LEASE_TTL_MS}ms`,
  CANARY_GATE_REDIS_COMMAND_TIMEOUT: '300ms',
  CANARY_GATE_POLICY_MIN_SAMPLES: '20',
  CANARY_GATE_LOG_LEVEL: 'error',
};

interface Proc {
  readonly child: ChildProcess;
  readonly proxy: string;
  readonly admin: string;
}

async function status(p: Proc): Promise<{ evaluator: { holding: boolean }; state: { phase: string } } | undefined> {
  return request(`${p.admin}/status`).then(
    async (r) => (r.statusCode === 200 ? ((await r.body.json()) as never) : (await r.body.dump(), undefined)),
    () => undefined,
  );
}

async function spawnSidecar(
  service: string,
  pod: string,
  version: string,
  upstream: string,
  extraEnv: Record<string, string> = {},
): Promise<Proc> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const env = {
    PATH: process.env.PATH ?? '',
    ...common,
    ...extraEnv,
    SERVICE_NAME: service,
    POD_NAME: pod,
    POD_VERSION: version,
    UPSTREAM_URL: upstream,
    PROXY_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
  };
  const child = spawn(process.execPath, [MAIN, 'run'], { env, stdio: 'ignore' });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  });
  const p = { child, proxy: `http://127.0.0.1:${proxyPort}`, admin: `http://127.0.0.1:${adminPort}` };
  await eventually(() => status(p), 15_000, `${pod} answering /status`);
  return p;
}

describe('the evaluator process killed with SIGKILL', () => {
  it('is replaced by another sidecar within two lease periods, and the latched rollback holds', async () => {
    const ok = await startUpstream();
    const failing = await startUpstream((_req, res) => void res.writeHead(503).end('x'));
    cleanups.push(
      () => ok.close(),
      () => failing.close(),
    );
    const service = `kill-${process.pid}`;
    const pods = [
      await spawnSidecar(service, 'a', 'v1', ok.url),
      await spawnSidecar(service, 'b', 'v1', ok.url),
      await spawnSidecar(service, 'c', 'v2', failing.url),
    ];
    // Load until the canary is rolled back.
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++)
        await request(`${pods[i % 3]!.proxy}/`).then(
          (r) => r.body.dump(),
          () => sleep(10),
        );
    })();
    const holderOf = async (candidates: Proc[]): Promise<Proc | undefined> => {
      for (const p of candidates) if ((await status(p))?.evaluator.holding) return p;
      return undefined;
    };
    await eventually(
      async () => ((await status((await holderOf(pods)) ?? pods[0]!))?.state.phase === 'rolled_back' ? true : undefined),
      20_000,
      'the rollback',
    );
    loading = false;
    await load;
    const holder = (await holderOf(pods))!;
    const others = pods.filter((p) => p !== holder);

    const killedAt = Date.now();
    holder.child.kill('SIGKILL');
    const next = await eventually(() => holderOf(others), 10_000, 'a new lease holder');
    const takeoverMs = Date.now() - killedAt;
    console.log(`lease taken over ${takeoverMs} ms after SIGKILL (lease TTL ${LEASE_TTL_MS} ms)`);
    expect(takeoverMs).toBeLessThanOrEqual(2 * LEASE_TTL_MS + 500); // two lease periods, plus one renewal tick of slack
    await eventually(
      async () => ((await status(next))?.state.phase === 'rolled_back' ? true : undefined),
      5000,
      'the latch read by the new holder',
    );
  });
});

describe('an evaluator process paused past its lease (SIGSTOP), then resumed', () => {
  it('finds the lease taken by another with a larger fencing token, steps down, and leaves the new decision alone', async () => {
    const ok = await startUpstream();
    let failing = true;
    const canaryApp = await startUpstream((_req, res) => void res.writeHead(failing ? 503 : 200).end('x'));
    cleanups.push(
      () => ok.close(),
      () => canaryApp.close(),
    );
    const service = `pause-${process.pid}`;
    const pods = [await spawnSidecar(service, 'a', 'v1', ok.url), await spawnSidecar(service, 'b', 'v2', canaryApp.url)];
    const holderOf = async (): Promise<Proc | undefined> => {
      for (const p of pods) if ((await status(p))?.evaluator.holding) return p;
      return undefined;
    };
    const old = await eventually(holderOf, 10_000, 'a first lease holder');
    const other = pods.find((p) => p !== old)!;
    const tokenOf = async (p: Proc) =>
      ((await (await request(`${p.admin}/status`)).body.json()) as { evaluator: { fencingToken: number } }).evaluator.fencingToken;
    const oldToken = await tokenOf(old);
    old.child.kill('SIGSTOP');
    cleanups.push(async () => void old.child.kill('SIGCONT'));
    // Load through the live sidecar only: it takes the lease and rolls the failing canary back on its own.
    let loading = true;
    const load = (async () => {
      while (loading)
        await request(`${other.proxy}/`).then(
          (r) => r.body.dump(),
          () => sleep(10),
        );
    })();
    await eventually(async () => ((await status(other))?.evaluator.holding ? true : undefined), 5000, 'the lease taken over');
    expect(await tokenOf(other)).toBeGreaterThan(oldToken);
    await eventually(
      async () => ((await status(other))?.state.phase === 'rolled_back' ? true : undefined),
      10_000,
      'the rollback by the new holder',
    );
    // The canary is fixed and its window fills with healthy requests; the operator resets; the old evaluator wakes up.
    failing = false;
    await sleep(3000);
    loading = false;
    await load;
    const reset = spawnSync(process.execPath, [MAIN, 'reset', '--flag', '10', '--reason', 'fixed', '--actor', 'test'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: redisServer.url, SERVICE_NAME: service },
    });
    expect(reset.status, reset.stderr).toBe(0);
    old.child.kill('SIGCONT');
    await sleep(3 * LEASE_TTL_MS);
    expect((await status(old))?.evaluator.holding).toBe(false);
    expect((await status(other))?.evaluator.holding).toBe(true);
    const flags = await import('ioredis').then(({ Redis }) => new Redis(redisServer.url));
    cleanups.push(async () => flags.disconnect());
    expect(await flags.get(`feature:{${service}}:v2_traffic_percentage`)).toBe('10');
    const audit = await flags.xrange(`canary-gate:{${service}}:audit`, '-', '+');
    // One rollback, by the new holder, then the reset: nothing from the resumed evaluator.
    expect(audit.map(([, f]) => `${f[1]} ${f[3]}`)).toEqual([`rollback ${other === pods[0] ? 'a' : 'b'}`, 'reset test']);
  });
});

describe('a sidecar process stopped with SIGTERM (a pod deleted or rolled)', () => {
  it('answers the request in flight, publishes every request it recorded, releases the lease and exits 0', async () => {
    const app = await startUpstream((req, res) => {
      setTimeout(() => res.end('ok'), req.url === '/slow' ? 1500 : 0);
    });
    cleanups.push(() => app.close());
    const service = `sigterm-${process.pid}`;
    // 1 s slots: the slot keys live (8 + 2) s, long enough to read them after the exit.
    const pod = await spawnSidecar(service, 'term', 'v1', app.url, { CANARY_GATE_WINDOW_SLOT: '1s' });
    await eventually(async () => ((await status(pod))?.evaluator.holding ? true : undefined), 10_000, 'the lease held');
    for (let i = 0; i < 25; i++) await (await request(`${pod.proxy}/fast`)).body.dump();
    const inFlight = request(`${pod.proxy}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    await sleep(300);
    const exited = new Promise<number | null>((resolve) => pod.child.once('exit', (code) => resolve(code)));
    pod.child.kill('SIGTERM');
    expect(await inFlight).toEqual({ status: 200, body: 'ok' });
    expect(await exited).toBe(0);

    const { Redis } = await import('ioredis');
    const redis = new Redis(redisServer.url);
    cleanups.push(async () => redis.disconnect());
    expect(await redis.get(`canary-gate:{${service}}:lease`)).toBeNull();
    let published = 0;
    for (const key of await redis.keys(`canary-gate:{${service}}:slot:v1:*`)) {
      const payload = await redis.hget(key, 'term');
      if (payload !== null) published += (JSON.parse(payload) as { requests: number }).requests;
    }
    // The 25 fast requests and the one in flight at SIGTERM: none left unpublished.
    expect(published).toBe(26);
  });
});

describe('a pod whose clock runs 3 s ahead', () => {
  it('publishes slots in the future; the evaluator keeps judging and merges them when their time comes', async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const service = `skew-${process.pid}`;
    const sidecars: Sidecar[] = [];
    const proxies: string[] = [];
    for (const [pod, version, skewMs] of [
      ['a', 'v1', 0],
      ['b', 'v2', 0],
      ['ahead', 'v2', 3000],
    ] as const) {
      // A 5 s window (20 slots): slot keys live (slots + 2) x slot = 5.5 s, longer than the 3 s skew, as with the
      // defaults (60 s window). A skew beyond that loses the pod's slots: they expire before they are judged.
      const config = loadConfig({
        env: {
          ...common,
          CANARY_GATE_WINDOW_SLOTS: '20',
          SERVICE_NAME: service,
          POD_NAME: pod,
          POD_VERSION: version,
          UPSTREAM_URL: app.url,
          PROXY_PORT: '0',
          ADMIN_PORT: '0',
          CANARY_GATE_EVALUATION_ENABLED: pod === 'a' ? 'true' : 'false',
        },
      });
      const sidecar = buildSidecar(config, { logger: silent, clock: () => Date.now() + skewMs });
      cleanups.push(() => sidecar.destroy());
      sidecars.push(sidecar);
      proxies.push(`http://127.0.0.1:${(await sidecar.start()).proxyPort}`);
    }
    const sent = [0, 0, 0];
    const end = Date.now() + 2000;
    while (Date.now() < end) {
      for (let i = 0; i < 3; i++) {
        await (await request(`${proxies[i]}/`)).body.dump();
        sent[i]!++;
      }
    }
    const evaluator = sidecars[0]!;
    // The skewed pod's slots are 12 slots ahead of the evaluator's window at first; then they are inside it.
    const merged = await eventually(
      () => {
        const canary = evaluator.status().latestVerdict?.canary;
        return canary && canary.pods === 2 ? canary : undefined;
      },
      10_000,
      "the skewed pod's slots merged into the canary window",
    );
    expect(merged.requests).toBeGreaterThan(0);
    expect(evaluator.status().lastError).toBeNull();
    expect(sidecars.every((s) => s.status().local.requests > 0)).toBe(true);
  });
});
