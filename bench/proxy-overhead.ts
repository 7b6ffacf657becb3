/**
 * Per-pod cost: the same upstream hit directly, through canary-gate (what production runs), through a bare undici
 * proxy with no telemetry (bench/servers/bare-proxy.ts), through nginx and through HAProxy (Debian packages, upstream
 * keep-alive), side by side.
 *
 * Method: the upstream and the proxy under test share the system core, the load generators run on the load core
 * (taskset). Throughput at saturation with wrk (16 connections, 1 thread, closed loop). Latency at 1000 and 2000 rps
 * with the C open-loop generator (bench/servers/open-loop.c, compiled here with `cc -O2`): requests leave on a fixed
 * schedule over 32 keep-alive connections and latency counts from each one's due time, so a stalled proxy cannot hide
 * its stall. CPU per request (µs) from /proc/<pid>/stat utime + stime over each wrk and open-loop run, for every proxy
 * (nginx runs `master_process off`, HAProxy `-db` with one thread, so the process started is the one doing the work);
 * RSS idle (after start, before any load) and after the last run. Contenders alternate within each round, the order
 * reversed every other round; medians over rounds. The result carries a targets block: issue 14's per-pod targets
 * with canary-gate's figures and whether each is met, computed from the figures.
 *
 * canary-gate runs `node $BENCH_GATE_NODE_FLAGS $BENCH_GATE_ENTRY run` (default: what the image runs, the Dockerfile
 * ENTRYPOINT's node flags and dist/cli/bin.js; `npm run build` runs first when dist/ is missing or older than src/).
 * BENCH_GATE_VARIANTS adds more canary-gate contenders (see VARIANTS). BENCH_GATE_ENTRY=src/cli/main.ts runs the
 * sources with type stripping, as before. Environment: BENCH_ROUNDS (default 3), BENCH_DURATION_S (each wrk run,
 * default 8), BENCH_LATENCY_S (each open-loop run, default 10), BENCH_SMOKE=1 (tiny durations, one round).
 *
 * @throws (exits non-zero) when wrk, haproxy, nginx or cc is missing, naming the Debian package to install
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { freePort } from '../src/demo/find-redis.ts';
import {
  buildIfStale,
  CORES,
  compileOpenLoop,
  cpuSeconds,
  HAS_TASKSET,
  imageNodeFlags,
  median,
  missingCommands,
  NODE,
  openLoop,
  ROOT,
  rssBytes,
  SMOKE,
  sleep,
  spawnPinned,
  startServer,
  stop,
  type OpenLoopSummary,
  wrk,
  writeResult,
} from './lib.ts';

/** Offered rates of the latency runs, requests/s: the issue's targets are set at these two. */
const RATES = [1000, 2000] as const;
const P = {
  rounds: SMOKE ? 1 : Number(process.env.BENCH_ROUNDS ?? 3),
  saturationS: SMOKE ? 1 : Number(process.env.BENCH_DURATION_S ?? 8),
  latencyS: SMOKE ? 0.5 : Number(process.env.BENCH_LATENCY_S ?? 10),
  wrkConnections: 16,
  openLoopConnections: 32,
  rates: RATES,
};
/** How one canary-gate contender runs: its entry (relative to the repository or absolute) and its node flags. */
interface GateRun {
  readonly name: string;
  readonly entry: string;
  readonly nodeFlags: readonly string[];
}
const GATE: GateRun = {
  name: 'canary-gate',
  entry: process.env.BENCH_GATE_ENTRY ?? 'dist/cli/bin.js',
  nodeFlags:
    process.env.BENCH_GATE_NODE_FLAGS !== undefined ? process.env.BENCH_GATE_NODE_FLAGS.split(/\s+/).filter(Boolean) : imageNodeFlags(),
};
/**
 * More canary-gate contenders beside the one the targets judge, for a before/after in one run:
 * BENCH_GATE_VARIANTS='[{"name":"before","entry":"/path/to/old/src/cli/main.ts","nodeFlags":[]}]'. Each row is named
 * `canary-gate (<name>)`.
 */
const VARIANTS: GateRun[] = (JSON.parse(process.env.BENCH_GATE_VARIANTS ?? '[]') as Array<Partial<GateRun>>).map((v, i) => ({
  name: `canary-gate (${v.name ?? `variant ${i + 1}`})`,
  entry: v.entry ?? GATE.entry,
  nodeFlags: v.nodeFlags ?? [],
}));
const isGate = (name: string): boolean => name === GATE.name || name.startsWith(`${GATE.name} (`);
const MiB = 2 ** 20;
/** Share of direct's open-loop requests (0..1) that may leave more than 1 ms late before a run's latency targets are not judged. */
const MAX_DIRECT_LATE_SHARE = 0.01;

interface Contender {
  readonly name: string;
  readonly url: string;
  /** The process doing the work (taskset execs its command), or null for direct. */
  readonly child: ChildProcess | null;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (no HTTP request: idle RSS stays idle). */
async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** Waits for `ready`; when it fails, stops `child` first so that no contender outlives a failed start. */
async function readyOrStop(child: ChildProcess, ready: Promise<void>): Promise<void> {
  try {
    await ready;
  } catch (err) {
    await stop(child);
    throw err;
  }
}

async function waitForHttp(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const ok = await request(url).then(
      async (r) => (await r.body.dump(), r.statusCode < 500),
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${url} never answered`);
}

async function startNginx(upstreamPort: number, dir: string): Promise<Contender> {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  // master_process off: the process started is the worker, so /proc/<pid> shows the CPU and memory of the work.
  writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const child = spawnPinned(CORES.system, 'nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'nginx-error.log')]);
  await readyOrStop(child, waitForPort(port));
  return { name: 'nginx', url: `http://127.0.0.1:${port}/`, child };
}

async function startHaproxy(upstreamPort: number, dir: string): Promise<Contender> {
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  // One thread, foreground (-db, no master-worker): the process started does the work. http-reuse always keeps the
  // upstream connections alive across client connections, as nginx's keepalive pool does.
  writeFileSync(
    conf,
    `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout http-keep-alive 65s
frontend bench
  bind 127.0.0.1:${port}
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:${upstreamPort}
`,
  );
  const child = spawnPinned(CORES.system, 'haproxy', ['-f', conf, '-db']);
  await readyOrStop(child, waitForPort(port));
  return { name: 'HAProxy', url: `http://127.0.0.1:${port}/`, child };
}

async function startCanaryGate(upstreamPort: number, gate: GateRun): Promise<Contender> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
    PROXY_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
    SERVICE_NAME: `bench-${process.pid}-${proxyPort}`,
    POD_NAME: 'bench-0',
    POD_VERSION: 'v2',
    CANARY_GATE_PROXY_HOST: '127.0.0.1',
    CANARY_GATE_ADMIN_HOST: '127.0.0.1',
    CANARY_GATE_LOG_LEVEL: 'error',
    CANARY_GATE_REDIS_KEY_PREFIX: 'cg-bench',
  };
  const child = spawnPinned(CORES.system, NODE, [...gate.nodeFlags, resolve(ROOT, gate.entry), 'run'], env);
  // Readiness on the admin port: no request goes through the proxy before the idle RSS is read.
  await readyOrStop(child, waitForHttp(`http://127.0.0.1:${adminPort}/readyz`));
  return { name: gate.name, url: `http://127.0.0.1:${proxyPort}/`, child };
}

/** Every reading of one contender, one entry per round (per rate for the open-loop runs). */
interface Readings {
  rps: number[];
  saturationErrors: number;
  cpuUsSaturation: number[];
  rssIdleBytes: number;
  rssAfterBytes: number;
  atRate: Map<number, { runs: OpenLoopSummary[]; cpuUs: number[] }>;
}

const missing = missingCommands({ wrk: 'wrk', haproxy: 'haproxy', nginx: 'nginx-light', cc: 'gcc' });
if (missing !== null) {
  console.error(`proxy-overhead: ${missing}`);
  process.exit(1);
}
const built = [GATE, ...VARIANTS].some((g) => g.entry.startsWith('dist/')) ? buildIfStale() : false;
const dir = mkdtempSync(join(tmpdir(), 'cg-bench-cost-'));
const openLoopBin = compileOpenLoop(dir);
const upstream = await startServer('upstream.ts');
const contenders: Contender[] = [{ name: 'direct', url: `http://127.0.0.1:${upstream.port}/`, child: null }];
const notes: string[] = [];
try {
  contenders.push(await startCanaryGate(upstream.port, GATE));
  for (const variant of VARIANTS) contenders.push(await startCanaryGate(upstream.port, variant));
  const bare = await startServer('bare-proxy.ts', [`http://127.0.0.1:${upstream.port}`]);
  contenders.push({ name: 'bare undici proxy', url: `http://127.0.0.1:${bare.port}/`, child: bare.child });
  contenders.push(await startNginx(upstream.port, dir));
  contenders.push(await startHaproxy(upstream.port, dir));
  if (!HAS_TASKSET) notes.push('taskset missing: processes were not pinned');

  // Idle: every contender started, a second to settle, no request through any proxy yet.
  await sleep(1000);
  const readings = new Map<string, Readings>();
  for (const c of contenders) {
    const rssIdleBytes = c.child ? rssBytes(c.child.pid!) : Number.NaN;
    readings.set(c.name, {
      rps: [],
      saturationErrors: 0,
      cpuUsSaturation: [],
      rssIdleBytes,
      rssAfterBytes: Number.NaN,
      atRate: new Map(RATES.map((rate) => [rate, { runs: [], cpuUs: [] }])),
    });
  }

  for (let round = 0; round < P.rounds; round++) {
    // Alternate the order every round so that no contender always runs first (warm caches, thermal state).
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const r = readings.get(c.name)!;
      const pid = c.child?.pid;
      const cpuBefore = pid ? cpuSeconds(pid) : 0;
      const saturated = await wrk({ url: c.url, connections: P.wrkConnections, durationS: P.saturationS });
      if (pid) r.cpuUsSaturation.push(((cpuSeconds(pid) - cpuBefore) / saturated.requests) * 1e6);
      r.rps.push(saturated.rps);
      r.saturationErrors += saturated.errors;
      for (const rate of RATES) {
        const at = r.atRate.get(rate)!;
        const before = pid ? cpuSeconds(pid) : 0;
        const paced = await openLoop(openLoopBin, { url: c.url, rate, durationS: P.latencyS, connections: P.openLoopConnections });
        if (pid) at.cpuUs.push(((cpuSeconds(pid) - before) / Math.max(1, paced.requests)) * 1e6);
        at.runs.push(paced);
      }
      if (pid) r.rssAfterBytes = rssBytes(pid);
    }
  }

  const figures = summarize(readings);
  const targets = targetsOf(figures);
  const path = await writeResult(
    'proxy-overhead',
    { ...P, gateEntry: GATE.entry, gateNodeFlags: GATE.nodeFlags.join(' '), gateVariants: VARIANTS, gateBuilt: built, cores: CORES, notes },
    figures,
    { targets },
  );
  console.table(figures);
  console.table(targets);
  console.log(`wrote ${path}`);
} finally {
  for (const c of contenders) if (c.child) await stop(c.child);
  await stop(upstream.child);
  rmSync(dir, { recursive: true, force: true });
}

/** A figure rounded to `digits` decimals, or null when it was not measured (NaN, empty). */
function round(v: number, digits: number): number | null {
  return Number.isFinite(v) ? Number(v.toFixed(digits)) : null;
}
/** Median, or NaN for no values (a figure not measured for this contender). */
function medianOr(values: readonly number[]): number {
  return values.length ? median(values) : Number.NaN;
}

/**
 * One row per contender: saturation rps and its ratio to direct, CPU µs per request (saturation and each rate), RSS
 * idle and after load (MiB), and at each rate p50/p90/p99/p99.9/max (ms, medians over rounds), p99 added to direct's
 * and, for canary-gate, to the bare proxy's, achieved rps, late sends and errors.
 */
function summarize(readings: Map<string, Readings>): Array<Record<string, string | number | null>> {
  const direct = readings.get('direct')!;
  const bare = readings.get('bare undici proxy')!;
  const p99 = (r: Readings, rate: number): number => median(r.atRate.get(rate)!.runs.map((s) => s.p99Ms));
  return [...readings].map(([name, r]) => {
    const row: Record<string, string | number | null> = {
      contender: name,
      rps: Math.round(median(r.rps)),
      ratioToDirect: round(median(r.rps) / median(direct.rps), 3),
      saturationErrors: r.saturationErrors,
      cpuUsPerRequest: round(medianOr(r.cpuUsSaturation), 1),
      rssIdleMiB: round(r.rssIdleBytes / MiB, 1),
      rssAfterLoadMiB: round(r.rssAfterBytes / MiB, 1),
    };
    for (const rate of RATES) {
      const { runs, cpuUs } = r.atRate.get(rate)!;
      const m = (pick: (s: OpenLoopSummary) => number): number => median(runs.map(pick));
      Object.assign(row, {
        [`p50MsAt${rate}`]: round(
          m((s) => s.p50Ms),
          3,
        ),
        [`p90MsAt${rate}`]: round(
          m((s) => s.p90Ms),
          3,
        ),
        [`p99MsAt${rate}`]: round(
          m((s) => s.p99Ms),
          3,
        ),
        [`p999MsAt${rate}`]: round(
          m((s) => s.p999Ms),
          3,
        ),
        [`maxMsAt${rate}`]: round(
          m((s) => s.maxMs),
          3,
        ),
        [`addedP99MsAt${rate}`]: round(p99(r, rate) - p99(direct, rate), 3),
        [`addedP99MsVsBareAt${rate}`]: isGate(name) ? round(p99(r, rate) - p99(bare, rate), 3) : null,
        [`cpuUsPerRequestAt${rate}`]: round(medianOr(cpuUs), 1),
        [`achievedRpsAt${rate}`]: Math.round(m((s) => s.rps)),
        [`lateSendsAt${rate}`]: Math.round(m((s) => s.late)),
        [`errorsAt${rate}`]: runs.reduce((sum, s) => sum + s.errors + s.non2xx, 0),
      });
    }
    return row;
  });
}

/**
 * Issue 14's per-pod targets, each with canary-gate's figure, the limit it is held to (from the bare proxy's figures
 * where the target is relative) and whether it is met: true, false, or null with the reason in `inconclusive` when
 * the run cannot tell (a latency target when direct's own requests left late). The RSS after 1 M requests target is the memory benchmark's.
 */
function targetsOf(
  figures: ReadonlyArray<Record<string, string | number | null>>,
): Array<Record<string, string | number | boolean | null>> {
  const direct = figures.find((f) => f.contender === 'direct')!;
  const gate = figures.find((f) => f.contender === 'canary-gate')!;
  const bare = figures.find((f) => f.contender === 'bare undici proxy')!;
  const num = (v: string | number | null | undefined): number => (typeof v === 'number' ? v : Number.NaN);
  const target = (name: string, unit: string, value: number, limit: number, limitFrom: string | null, inconclusive: string | null) => ({
    target: name,
    unit,
    canaryGate: round(value, 3),
    limit: round(limit, 3),
    limitFrom,
    met: inconclusive === null && Number.isFinite(value) && Number.isFinite(limit) ? value <= limit : null,
    inconclusive,
  });
  return [
    target('idle RSS at most 80 MiB', 'MiB', num(gate.rssIdleMiB), 80, null, null),
    ...RATES.map((rate) => {
      const bareAddedMs = num(bare[`addedP99MsAt${rate}`]);
      // No proxy can make direct's requests leave late: when they did, the generator or the machine was busy and
      // every tail of the run is suspect, so the latency targets are not judged.
      const directLateShare = num(direct[`lateSendsAt${rate}`]) / (rate * P.latencyS);
      return target(
        `added p99 at ${rate} rps within 1 ms of the bare proxy's`,
        'ms',
        num(gate[`addedP99MsAt${rate}`]),
        bareAddedMs + 1,
        `bare proxy's ${bareAddedMs} ms + 1 ms`,
        directLateShare > MAX_DIRECT_LATE_SHARE
          ? `direct sent ${round(directLateShare * 100, 1)} % of its requests more than 1 ms late (over ${MAX_DIRECT_LATE_SHARE * 100} %): the load core or the machine was busy`
          : null,
      );
    }),
    target(
      "CPU per request at saturation at most the bare proxy's + 10 %",
      'µs',
      num(gate.cpuUsPerRequest),
      num(bare.cpuUsPerRequest) * 1.1,
      `bare proxy's ${bare.cpuUsPerRequest} µs + 10 %`,
      null,
    ),
  ];
}
