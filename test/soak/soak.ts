/**
 * The soak: a private redis-server (append-only file on, so a killed Redis restarts with its data), one loopback app
 * per version, four sidecar processes (`canary-gate run`: v1 a and b compete for the evaluator lease, v1 d and v2 c do
 * not, so two live the whole run), paced mixed load through them, and faults on a schedule: Redis paused (SIGSTOP),
 * Redis killed (SIGKILL) and restarted, the lease holder SIGKILLed and respawned, the app resetting connections.
 * The last phase makes the canary regress: its rollback must be written exactly once.
 *
 * Run it: `node test/soak/soak.ts [--duration 10m]` prints a JSON summary and exits 1 when a criterion fails.
 * `test/soak/soak.test.ts` runs it for about 100 s. The load, app and Redis helpers are exported for the fault tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import parseDuration from 'ms';
import { Agent, request } from 'undici';
import { freePort, startRedisServer } from '../../src/demo/find-redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------------
// Redis with persistence

/** A private redis-server that keeps its data across a restart (append-only file, fsync on every write). */
export interface PersistentRedis {
  readonly url: string;
  readonly port: number;
  /** The running redis-server process (replaced by `restart`). */
  process(): ChildProcess;
  /** Stops it: SIGTERM (a clean shutdown) or SIGKILL (a crash); resolves once it has exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again on the same port and directory; resolves once it answers PING. */
  restart(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

/** Starts a redis-server on a free loopback port with `appendonly yes` and `appendfsync always` in a fresh temp dir. */
export async function startPersistentRedis(): Promise<PersistentRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'canary-gate-redis-'));
  const args = ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always'];
  let server = await startRedisServer(args);
  const port = server.port;
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
    const child = server.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGCONT');
    child.kill(signal);
    await exited;
  };
  return {
    url: server.url,
    port,
    process: () => server.process,
    stop,
    restart: async () => {
      server = await startRedisServer(args, port);
    },
    destroy: async () => {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The app: fast, slow and erroring routes, and faults injected on cue (recorded by request id)

/** Faults an app injects, each recorded under the request's `x-soak-id` so the load can tell them from failures. */
export interface SoakApp {
  readonly upstream: Upstream;
  /** Request id -> the cause of the fault injected into it (`reset`, `regression`). */
  readonly injected: Map<string, string>;
  /** Share of requests (0..1) whose connection the app destroys before answering (the proxy answers 502). */
  resetRatio: number;
  /** Share of requests (0..1) answered 500 (a regressing release). */
  regressionRatio: number;
  close(): Promise<void>;
}

/**
 * Starts an app on loopback: every answer takes 5..15 ms (`/slow` 50..150 ms), `/error` answers 500, everything else
 * 200. Sub-millisecond answers would let a CPU hiccup of the one canary process (2 cores shared by 4 sidecars, the app
 * and the load) move the canary's p95 past 1.5 x the baseline's: a real difference the judge is right to see, but not
 * the one a soak is about.
 */
export async function startSoakApp(): Promise<SoakApp> {
  const faults = { injected: new Map<string, string>(), resetRatio: 0, regressionRatio: 0 };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const id = String(req.headers['x-soak-id'] ?? '');
    if (faults.resetRatio > 0 && Math.random() < faults.resetRatio) {
      faults.injected.set(id, 'reset');
      req.socket.destroy();
      return;
    }
    const answer = (): void => {
      if (faults.regressionRatio > 0 && Math.random() < faults.regressionRatio) {
        faults.injected.set(id, 'regression');
        res.writeHead(500).end('regressed');
      } else if (req.url === '/error') res.writeHead(500).end('error');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    };
    req.resume();
    req.once('end', () => setTimeout(answer, req.url === '/slow' ? 50 + Math.random() * 100 : 5 + Math.random() * 10));
  };
  const upstream = await startUpstream(handler);
  return Object.assign(faults, { upstream, close: () => upstream.close() });
}

// ---------------------------------------------------------------------------------------------------------------------
// Paced load

/** One sidecar the load goes through; `active` false takes it out of rotation (as a Service does with an unready pod). */
export interface LoadTarget {
  readonly name: string;
  readonly url: string;
  active: boolean;
  /** Requests sent to it and not yet answered. */
  inFlight: number;
}

/** What the load saw. A request is `ok` when it got its route's status, `deliberate` when an app injected its fault. */
export interface LoadCounts {
  sent: number;
  ok: number;
  /** Requests whose failure a fault caused on purpose, by cause (`reset`, `regression`). */
  readonly deliberate: Record<string, number>;
  /** Every other failure, by status (`status 502`) or client error code. */
  readonly failed: Record<string, number>;
  /** Ticks at which `maxInFlight` requests were already waiting, so nothing was sent (the load is bounded). */
  skipped: number;
}

export interface LoadOptions {
  readonly targets: LoadTarget[];
  /** Requests per second over all targets. */
  readonly ratePerSec: number;
  /** Requests in flight at most; past it a tick sends nothing and counts `skipped`. */
  readonly maxInFlight: number;
  /** Faults the apps injected, by request id (see SoakApp.injected). */
  readonly injected?: ReadonlyArray<Map<string, string>>;
  /** Time limit of one request, ms. Default 10 000. */
  readonly timeoutMs?: number;
  /** The rate climbs linearly from 0 to `ratePerSec` over this long, ms (traffic shifted onto new pods). Default 0. */
  readonly rampMs?: number;
}

interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly status: number;
}
const BODY = JSON.stringify({ item: 'x'.repeat(180) });
/** The mix: 77 % GET /, 20 % POST /items, 2 % GET /slow (50..150 ms), 1 % GET /error (500, expected). */
function routeOf(n: number): Route {
  const r = n % 100;
  if (r < 1) return { method: 'GET', path: '/error', status: 500 };
  if (r < 3) return { method: 'GET', path: '/slow', status: 200 };
  if (r < 23) return { method: 'POST', path: '/items', status: 200 };
  return { method: 'GET', path: '/', status: 200 };
}

/** Sends the mix at `ratePerSec`, round-robin over the active targets, until `stop()` (idempotent), which waits for the answers. */
export function startLoad(options: LoadOptions): { readonly counts: LoadCounts; stop(): Promise<LoadCounts> } {
  const counts: LoadCounts = { sent: 0, ok: 0, deliberate: {}, failed: {}, skipped: 0 };
  const agent = new Agent({
    connections: 64,
    keepAliveTimeout: 3000,
    headersTimeout: options.timeoutMs ?? 10_000,
    bodyTimeout: options.timeoutMs ?? 10_000,
  });
  const bump = (table: Record<string, number>, key: string): void => void (table[key] = (table[key] ?? 0) + 1);
  const causeOf = (id: string): string | undefined => {
    for (const m of options.injected ?? []) {
      const cause = m.get(id);
      if (cause !== undefined) return cause;
    }
    return undefined;
  };
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const send = (target: LoadTarget, n: number): void => {
    const route = routeOf(n);
    const id = `${target.name}-${n}`;
    counts.sent++;
    inFlight++;
    target.inFlight++;
    const p = request(`${target.url}${route.path}`, {
      dispatcher: agent,
      method: route.method,
      headers: { 'x-soak-id': id, 'content-type': 'application/json' },
      body: route.method === 'POST' ? BODY : null,
    })
      .then(
        async (res) => {
          await res.body.dump();
          if (res.statusCode === route.status) counts.ok++;
          else {
            const cause = causeOf(id);
            bump(cause === undefined ? counts.failed : counts.deliberate, cause ?? `status ${res.statusCode}`);
          }
        },
        (err: Error & { code?: string }) => bump(counts.failed, err.code ?? err.message),
      )
      .finally(() => {
        inFlight--;
        target.inFlight--;
        pending.delete(p);
      });
    pending.add(p);
  };
  const startedMs = Date.now();
  let issued = 0;
  let next = 0;
  const rampMs = options.rampMs ?? 0;
  // Requests due after `t` ms: the integral of the rate, which climbs linearly during the ramp.
  const dueAt = (t: number): number => (options.ratePerSec / 1000) * (t < rampMs ? (t * t) / (2 * rampMs) : t - rampMs / 2);
  const timer = setInterval(() => {
    const due = Math.floor(dueAt(Date.now() - startedMs)) - issued;
    for (let i = 0; i < due; i++) {
      issued++;
      const active = options.targets.filter((t) => t.active);
      if (active.length === 0) continue;
      if (inFlight >= options.maxInFlight) {
        counts.skipped++;
        continue;
      }
      send(active[next++ % active.length]!, issued);
    }
  }, 10);
  let stopped: Promise<LoadCounts> | null = null;
  const stop = async (): Promise<LoadCounts> => {
    clearInterval(timer);
    while (pending.size > 0) await Promise.allSettled([...pending]);
    await agent.close();
    return counts;
  };
  return { counts, stop: () => (stopped ??= stop()) };
}

/** Sends `count` sequential GET / through each target, all targets at once (JIT and connection pools warm). */
export async function warmUp(targets: readonly LoadTarget[], count = 100): Promise<void> {
  await Promise.all(
    targets.map(async (t) => {
      for (let i = 0; i < count; i++)
        await request(`${t.url}/`).then(
          (r) => r.body.dump(),
          () => undefined,
        );
    }),
  );
}

/** Takes `target` out of rotation and resolves once none of its requests is still in flight (at most `timeoutMs`). */
export async function drainTarget(target: LoadTarget, timeoutMs = 10_000): Promise<void> {
  target.active = false;
  const deadline = Date.now() + timeoutMs;
  while (target.inFlight > 0 && Date.now() < deadline) await sleep(10);
}

// ---------------------------------------------------------------------------------------------------------------------
// Sidecar processes

/** The sidecar settings of the soak: 1 s slots, a 10 s window, a 3 s lease. */
export const SOAK_SIDECAR_ENV: Readonly<Record<string, string>> = {
  CANARY_GATE_PROXY_HOST: '127.0.0.1',
  CANARY_GATE_ADMIN_HOST: '127.0.0.1',
  CANARY_GATE_WINDOW_SLOT: '1s',
  CANARY_GATE_WINDOW_SLOTS: '10',
  CANARY_GATE_EVALUATION_DELAY: '200ms',
  CANARY_GATE_EVALUATION_LEASE_TTL: '3s',
  CANARY_GATE_REDIS_COMMAND_TIMEOUT: '500ms',
  CANARY_GATE_REDIS_CONNECT_TIMEOUT: '500ms',
  CANARY_GATE_POLICY_MIN_SAMPLES: '50',
  CANARY_GATE_LOG_LEVEL: 'error',
};

/** A `canary-gate run` child process. */
export interface SidecarProcess {
  readonly pod: string;
  readonly version: string;
  readonly proxy: string;
  readonly admin: string;
  child: ChildProcess;
  /** When the current process was started, ms since the epoch. */
  startedMs: number;
  /** SIGKILLs the process; resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts it again on the same ports; resolves once /readyz answers 200. */
  respawn(): Promise<void>;
}

/** The subset of GET /status the soak reads. */
export interface StatusView {
  readonly evaluator: { readonly holding: boolean; readonly fencingToken: number };
  readonly state: { readonly phase: string };
  readonly latestVerdict: { readonly atMs: number; readonly outcome: string } | null;
  readonly lastError: string | null;
  readonly publish: { readonly buffered: number; readonly dropped: number };
  readonly redis: { readonly connection: string };
}

/** GET `admin`/status, or undefined when it does not answer 200 within 2 s. */
export async function statusOf(admin: string): Promise<StatusView | undefined> {
  try {
    const res = await request(`${admin}/status`, { headersTimeout: 2000, bodyTimeout: 2000 });
    if (res.statusCode !== 200) return void (await res.body.dump());
    return (await res.body.json()) as StatusView;
  } catch {
    return undefined;
  }
}

/** Polls `probe` every 100 ms until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Spawns `canary-gate run` for `pod` on free ports with SOAK_SIDECAR_ENV and `env`; resolves once /readyz answers 200. */
export async function spawnSidecarProcess(pod: string, version: string, env: Record<string, string>): Promise<SidecarProcess> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const fullEnv = {
    PATH: process.env.PATH ?? '',
    ...SOAK_SIDECAR_ENV,
    ...env,
    POD_NAME: pod,
    POD_VERSION: version,
    PROXY_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
  };
  const admin = `http://127.0.0.1:${adminPort}`;
  const ready = (): Promise<true | undefined> =>
    request(`${admin}/readyz`).then(
      async (r) => (await r.body.dump(), r.statusCode === 200 ? true : undefined),
      () => undefined,
    );
  const start = async (): Promise<void> => {
    p.child = spawn(process.execPath, [MAIN, 'run'], { env: fullEnv, stdio: ['ignore', 'ignore', 'inherit'] });
    p.startedMs = Date.now();
    await waitFor(ready, 20_000, `${pod} ready`);
  };
  const p: SidecarProcess = {
    pod,
    version,
    admin,
    proxy: `http://127.0.0.1:${proxyPort}`,
    child: undefined as unknown as ChildProcess,
    startedMs: 0,
    kill: async () => {
      const child = p.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    respawn: start,
  };
  await start();
  return p;
}

/** Resident set size of process `pid` from /proc/PID/status (VmRSS), MiB; NaN when it cannot be read. */
export function rssMiB(pid: number | undefined): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'));
    return line ? Number(line.split(/\s+/)[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The event-loop lag p99 since the previous scrape (prom-client resets it per scrape), ms; NaN when unreadable. */
export async function lagP99Ms(admin: string): Promise<number> {
  try {
    const res = await request(`${admin}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 });
    const text = await res.body.text();
    const line = text.split('\n').find((l) => l.startsWith('nodejs_eventloop_lag_p99_seconds'));
    return line ? Number(line.split(' ').at(-1)) * 1000 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The run

export interface SoakOptions {
  /** Length of the whole run, ms (warm-up, faults, regression). At least 90 000. */
  readonly durationMs: number;
  /** Requests per second over all sidecars. Default 200. */
  readonly ratePerSec?: number;
  /** Progress lines on stderr. Default true. */
  readonly verbose?: boolean;
}

/** One fault as scheduled and observed. */
export interface FaultRecord {
  readonly fault: 'redis_pause' | 'redis_restart' | 'evaluator_kill' | 'app_resets';
  /** Seconds since the start of the load. */
  readonly atS: number;
  /** Seconds from the end of the fault until every sidecar has published its buffer and a holder has judged again; null: never. */
  readonly recoveredAfterS: number | null;
  /** For evaluator_kill: seconds from SIGKILL until another sidecar holds the lease. */
  readonly takeoverS?: number;
}

/** Memory and event-loop lag of one sidecar process, sampled after warm-up and at the end. */
export interface SidecarFigures {
  readonly pod: string;
  readonly version: string;
  /** Times this sidecar was SIGKILLed and respawned; the figures below are of its last process. */
  readonly respawns: number;
  /** Median RSS of the samples of the 30 s after the process settled (a third of the run, 20 s..4 min), and of the last 30 s, MiB. */
  readonly rssStartMiB: number;
  readonly rssEndMiB: number;
  /** Median of the event-loop lag p99 samples (5 s apart) at the start and at the end, ms. */
  readonly lagP99StartMs: number;
  readonly lagP99EndMs: number;
  /** Whether this process lived through the whole run (only those are held to the RSS and lag bounds). */
  readonly wholeRun: boolean;
  /** RSS of the last process once a minute from its start, MiB: a leak climbs, a settling heap levels off. */
  readonly rssSeriesMiB: number[];
}

/** A criterion, its bound and whether it held. */
export interface Criterion {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** A rollback entry of the audit stream: when (seconds since the start of the load) and the decision's reason. */
export interface RollbackEntry {
  readonly atS: number;
  readonly reason: string;
}

export interface SoakResult {
  readonly durationS: number;
  readonly load: LoadCounts;
  readonly faults: FaultRecord[];
  readonly sidecars: SidecarFigures[];
  /** Every rollback entry of the audit stream. */
  readonly rollbacks: RollbackEntry[];
  /** Rollback entries in the audit stream before the regression (false rollbacks), and after it. */
  readonly rollbacksBeforeRegression: number;
  readonly rollbacksAfterRegression: number;
  /** Seconds from the start of the regression until the flag was written; null: never. */
  readonly rollbackAfterS: number | null;
  readonly flag: string | null;
  /** Decisions made and never written: rollbacks expected (1) minus rollbacks in the audit stream after the regression, at least 0. */
  readonly decisionsLost: number;
  readonly criteria: Criterion[];
  readonly ok: boolean;
}

/**
 * Bounds. RSS settles for about 3 minutes under the soak's load (measured: 200 -> 265 MiB, then flat within 2 MiB for
 * the next 6 minutes: V8 grows its spaces lazily and WebAssembly memory for the histograms never shrinks), so "after
 * warm-up" is a third of the run, at most 4 minutes (one run still climbed 15 MiB in its fourth minute). A full run
 * (>= 6 min) allows +10 % or +24 MiB after that, whichever is larger: a leak of 1 KiB per request at ~50 rps per sidecar
 * adds ~18 MiB in 6 minutes, several times the 2-3 MiB seen once settled. A short
 * run ends while the heap is still settling and only catches gross leaks: +25 % or +48 MiB. Lag: the end median below
 * 50 ms and below start + 20 ms; prom-client samples every 10 ms, so an idle process already reads ~10 ms.
 */
export const SOAK_BOUNDS = {
  full: { rssGrowthRatio: 0.1, rssGrowthMiB: 24 },
  short: { rssGrowthRatio: 0.25, rssGrowthMiB: 48 },
  fullRunMs: 6 * 60_000,
  lagP99EndMs: 50,
  lagP99GrowthMs: 20,
} as const;

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
};
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Runs the soak for `durationMs` and returns what it saw and which criteria held. Starts and stops everything it uses:
 * a private redis-server, two apps, four sidecar processes.
 */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const durationMs = Math.max(90_000, options.durationMs);
  const log = (line: string): void =>
    void (options.verbose !== false && process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`));
  const redis = await startPersistentRedis();
  const [v1App, v2App] = [await startSoakApp(), await startSoakApp()];
  const service = `soak-${process.pid}`;
  const flagKey = `feature:{${service}}:v2_traffic_percentage`;
  const sidecars: SidecarProcess[] = [];
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', () => undefined);
  const respawns = new Map<string, number>();
  try {
    const base = { REDIS_URL: redis.url, SERVICE_NAME: service };
    for (const [pod, version, app, evaluates] of [
      ['a', 'v1', v1App, true],
      ['b', 'v1', v1App, true],
      ['c', 'v2', v2App, false],
      ['d', 'v1', v1App, false],
    ] as const) {
      sidecars.push(
        await spawnSidecarProcess(pod, version, {
          ...base,
          UPSTREAM_URL: app.upstream.url,
          CANARY_GATE_EVALUATION_ENABLED: String(evaluates),
        }),
      );
    }
    await client.connect();
    const targets: LoadTarget[] = sidecars.map((s) => ({ name: s.pod, url: s.proxy, active: true, inFlight: 0 }));
    // Fresh processes on a shared 2-core host answer their first requests slowly (a cold canary once read p95 990 ms
    // in its first seconds, a rollback on the absolute check): warm them, then ramp the load up over 10 s.
    await warmUp(targets);
    const load = startLoad({
      targets,
      ratePerSec: options.ratePerSec ?? 200,
      maxInFlight: 200,
      injected: [v1App.injected, v2App.injected],
      rampMs: 10_000,
    });
    const t0 = Date.now();
    const elapsedS = (): number => round((Date.now() - t0) / 1000);
    log(`load started: ${sidecars.length} sidecars, ${options.ratePerSec ?? 200} rps, ${durationMs / 1000} s`);

    // Samples every 5 s: RSS from /proc, lag p99 from /metrics.
    const samples = new Map<string, Array<{ atMs: number; rssMiB: number; lagMs: number; pid: number | undefined }>>(
      sidecars.map((s) => [s.pod, []]),
    );
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const s of sidecars)
          samples.get(s.pod)!.push({ atMs: Date.now(), rssMiB: rssMiB(s.child.pid), lagMs: await lagP99Ms(s.admin), pid: s.child.pid });
        await sleep(5000);
      }
    })();

    const holder = async (): Promise<SidecarProcess | undefined> => {
      for (const s of sidecars) if ((await statusOf(s.admin))?.evaluator.holding) return s;
      return undefined;
    };
    /** Seconds from now until every sidecar has an empty buffer and a ready Redis client and a holder judged after `sinceMs`. */
    const recovery = async (sinceMs: number): Promise<number | null> => {
      try {
        await waitFor(
          async () => {
            const all = await Promise.all(sidecars.map((s) => statusOf(s.admin)));
            if (all.some((st) => st === undefined || st.publish.buffered > 0 || st.redis.connection !== 'ready')) return undefined;
            return all.some((st) => st!.evaluator.holding && (st!.latestVerdict?.atMs ?? 0) > sinceMs && st!.lastError === null)
              ? true
              : undefined;
          },
          30_000,
          'recovery',
        );
        return round((Date.now() - sinceMs) / 1000);
      } catch {
        return null;
      }
    };

    const warmupMs = 20_000;
    const regressionMs = 30_000;
    const faultSlotMs = 15_000;
    const faultKinds = ['redis_pause', 'redis_restart', 'evaluator_kill', 'app_resets'] as const;
    const faultCount = Math.max(faultKinds.length, Math.floor((durationMs - warmupMs - regressionMs) / faultSlotMs));
    const faults: FaultRecord[] = [];
    await sleep(warmupMs);
    for (let i = 0; i < faultCount; i++) {
      const slotEnd = Date.now() + faultSlotMs;
      const fault = faultKinds[i % faultKinds.length]!;
      const atS = elapsedS();
      let endedMs = Date.now();
      let takeoverS: number | undefined;
      if (fault === 'redis_pause') {
        redis.process().kill('SIGSTOP');
        await sleep(3000);
        redis.process().kill('SIGCONT');
      } else if (fault === 'redis_restart') {
        await redis.stop('SIGKILL');
        await sleep(3000);
        await redis.restart();
      } else if (fault === 'evaluator_kill') {
        const victim = (await holder()) ?? sidecars[0]!;
        const target = targets.find((t) => t.name === victim.pod)!;
        await drainTarget(target);
        const killedMs = Date.now();
        await victim.kill();
        const others = sidecars.filter((s) => s !== victim);
        await waitFor(
          async () => {
            for (const s of others) if ((await statusOf(s.admin))?.evaluator.holding) return true;
            return undefined;
          },
          15_000,
          'a new lease holder',
        ).catch(() => undefined);
        takeoverS = round((Date.now() - killedMs) / 1000);
        await victim.respawn();
        respawns.set(victim.pod, (respawns.get(victim.pod) ?? 0) + 1);
        target.active = true;
      } else {
        v1App.resetRatio = v2App.resetRatio = 0.05;
        await sleep(3000);
        v1App.resetRatio = v2App.resetRatio = 0;
      }
      endedMs = Date.now();
      const recoveredAfterS = await recovery(endedMs);
      faults.push({ fault, atS, recoveredAfterS, ...(takeoverS === undefined ? {} : { takeoverS }) });
      log(
        `${fault} at ${atS} s: recovered after ${recoveredAfterS} s${takeoverS === undefined ? '' : `, lease taken over after ${takeoverS} s`}`,
      );
      await sleep(Math.max(0, slotEnd - Date.now()));
    }

    // The regression: the canary answers 500 to 30 % of its requests; the gate must roll it back, once.
    const auditKey = `canary-gate:{${service}}:audit`;
    const rollbackEntries = async (): Promise<RollbackEntry[]> =>
      (await client.xrange(auditKey, '-', '+'))
        .filter(([, f]) => f[1] === 'rollback')
        .map(([id, f]) => ({ atS: round((Number(id.split('-')[0]) - t0) / 1000), reason: f[5] ?? '' }));
    const rollbacksBeforeRegression = (await rollbackEntries()).length;
    const regressionMs0 = Date.now();
    v2App.regressionRatio = 0.3;
    log('regression started');
    let rollbackAfterS: number | null = null;
    await waitFor(
      async () => ((await client.get(flagKey).catch(() => null)) === '0' ? true : undefined),
      regressionMs,
      'the rollback flag',
    ).then(
      () => void (rollbackAfterS = round((Date.now() - regressionMs0) / 1000)),
      () => undefined,
    );
    log(`rollback flag ${rollbackAfterS === null ? 'never written' : `written after ${rollbackAfterS} s`}`);
    await sleep(Math.max(0, regressionMs0 + regressionMs - Date.now()));
    const counts = await load.stop();
    sampling = false;
    await sampler;
    const rollbacks = await rollbackEntries();
    const rollbacksAfterRegression = rollbacks.length - rollbacksBeforeRegression;
    const flag = await client.get(flagKey);

    const endMs = Date.now();
    // RSS and lag "at the start": the samples of the 30 s after the process settled (a third of the run, 20 s..4 min).
    const settleMs = Math.min(240_000, Math.max(warmupMs, durationMs / 3));
    const rssBounds = durationMs >= SOAK_BOUNDS.fullRunMs ? SOAK_BOUNDS.full : SOAK_BOUNDS.short;
    const figures: SidecarFigures[] = sidecars.map((s) => {
      const mine = samples.get(s.pod)!.filter((x) => x.pid === s.child.pid);
      const startFrom = Math.max(s.startedMs, t0) + settleMs;
      const early = mine.filter((x) => x.atMs >= startFrom && x.atMs < startFrom + 30_000);
      const late = mine.filter((x) => x.atMs >= endMs - 30_000);
      return {
        pod: s.pod,
        version: s.version,
        respawns: respawns.get(s.pod) ?? 0,
        rssStartMiB: round(median(early.map((x) => x.rssMiB))),
        rssEndMiB: round(median(late.map((x) => x.rssMiB))),
        lagP99StartMs: round(median(early.map((x) => x.lagMs))),
        lagP99EndMs: round(median(late.map((x) => x.lagMs))),
        wholeRun: (respawns.get(s.pod) ?? 0) === 0,
        rssSeriesMiB: mine.filter((_, k) => k % 12 === 0).map((x) => round(x.rssMiB)),
      };
    });
    const criteria: Criterion[] = [];
    for (const f of figures.filter((x) => x.wholeRun)) {
      const rssBound = Math.max(f.rssStartMiB * rssBounds.rssGrowthRatio, rssBounds.rssGrowthMiB);
      criteria.push({
        name: `rss ${f.pod}`,
        ok: f.rssEndMiB - f.rssStartMiB < rssBound,
        detail: `${f.rssStartMiB} -> ${f.rssEndMiB} MiB, growth bound ${round(rssBound)} MiB`,
      });
      const lagBound = Math.min(SOAK_BOUNDS.lagP99EndMs, f.lagP99StartMs + SOAK_BOUNDS.lagP99GrowthMs);
      criteria.push({
        name: `lag ${f.pod}`,
        ok: f.lagP99EndMs < lagBound,
        detail: `p99 ${f.lagP99StartMs} -> ${f.lagP99EndMs} ms, bound ${round(lagBound)} ms`,
      });
    }
    const failed = Object.values(counts.failed).reduce((a, b) => a + b, 0);
    criteria.push({
      name: 'no failed requests',
      ok: failed === 0,
      detail: `${failed} failed of ${counts.sent}: ${JSON.stringify(counts.failed)}`,
    });
    criteria.push({
      name: 'load bounded and sent',
      ok: counts.sent > (durationMs / 1000) * (options.ratePerSec ?? 200) * 0.75,
      detail: `${counts.sent} sent, ${counts.skipped} skipped`,
    });
    criteria.push({
      name: 'every fault recovered',
      ok: faults.every((f) => f.recoveredAfterS !== null),
      detail: faults.map((f) => `${f.fault} ${f.recoveredAfterS} s`).join(', '),
    });
    criteria.push({
      name: 'no false rollback',
      ok: rollbacksBeforeRegression === 0,
      detail: `${rollbacksBeforeRegression} before the regression`,
    });
    criteria.push({
      name: 'regression rolled back exactly once',
      ok: rollbacksAfterRegression === 1 && flag === '0',
      detail: `${rollbacksAfterRegression} rollback entries, flag ${flag}`,
    });
    const result: SoakResult = {
      durationS: round((endMs - t0) / 1000),
      load: counts,
      faults,
      sidecars: figures,
      rollbacks,
      rollbacksBeforeRegression,
      rollbacksAfterRegression,
      rollbackAfterS,
      flag,
      decisionsLost: Math.max(0, 1 - rollbacksAfterRegression),
      criteria,
      ok: criteria.every((c) => c.ok),
    };
    return result;
  } finally {
    client.disconnect();
    for (const s of sidecars) await s.kill();
    await v1App.close();
    await v2App.close();
    await redis.destroy();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--duration');
  const durationMs = i > 0 ? parseDuration(process.argv[i + 1] as parseDuration.StringValue) : 10 * 60_000;
  if (typeof durationMs !== 'number' || !(durationMs > 0)) {
    process.stderr.write('usage: node test/soak/soak.ts [--duration 10m]\n');
    process.exit(2);
  }
  const result = await runSoak({ durationMs });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exit(result.ok ? 0 : 1);
}
