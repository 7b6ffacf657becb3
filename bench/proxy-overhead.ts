/**
 * Proxy overhead: the same upstream hit directly, through canary-gate, through nginx (Debian package, upstream
 * keep-alive) and through a bare undici proxy with no telemetry.
 *
 * Method: the upstream and the proxy under test share the system core, autocannon runs on the load core (taskset).
 * Throughput is measured at saturation (fixed connections, closed loop); latency separately at a fixed offered rate
 * below saturation with an open-loop generator (bench/servers/open-loop.ts: requests leave on a fixed schedule and
 * latency counts from each one's due time), so that slow responses are not hidden by a saturated queue or by the
 * client waiting for them. Contenders alternate within each round, several rounds; medians are reported with
 * ratios to direct. For canary-gate, CPU seconds per 10k requests (from /proc) and RSS after the run.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePort } from '../src/demo/find-redis.ts';
import {
  CORES,
  cpuSeconds,
  HAS_TASKSET,
  load,
  median,
  NODE,
  openLoop,
  ROOT,
  rssBytes,
  SMOKE,
  sleep,
  spawnPinned,
  startServer,
  stop,
  writeResult,
} from './lib.ts';

const P = SMOKE
  ? { rounds: 1, durationS: 1, connections: 4, rate: 100 }
  : { rounds: Number(process.env.BENCH_ROUNDS ?? 3), durationS: Number(process.env.BENCH_DURATION_S ?? 8), connections: 10, rate: 1000 };

interface Contender {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess | null;
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await request(url).then(
      async (r) => (await r.body.dump(), r.statusCode < 500),
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${url} never answered`);
}

function nginxPath(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

async function startNginx(bin: string, upstreamPort: number, dir: string): Promise<Contender> {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
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
  const child = spawnPinned(CORES.system, bin, ['-c', conf, '-p', dir]);
  const url = `http://127.0.0.1:${port}/`;
  await waitFor(url);
  return { name: 'nginx', url, child };
}

async function startCanaryGate(upstreamPort: number): Promise<Contender> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const env = {
    ...process.env,
    UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
    PROXY_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
    SERVICE_NAME: `bench-${process.pid}`,
    POD_NAME: 'bench-0',
    POD_VERSION: 'v2',
    CANARY_GATE_PROXY_HOST: '127.0.0.1',
    CANARY_GATE_ADMIN_HOST: '127.0.0.1',
    CANARY_GATE_LOG_LEVEL: 'error',
    CANARY_GATE_REDIS_KEY_PREFIX: 'cg-bench',
  };
  const child = spawnPinned(CORES.system, NODE, [join(ROOT, 'src/cli/main.ts'), 'run'], env);
  await waitFor(`http://127.0.0.1:${adminPort}/readyz`);
  return { name: 'canary-gate', url: `http://127.0.0.1:${proxyPort}/`, child };
}

const upstream = await startServer('upstream.ts');
const dir = mkdtempSync(join(tmpdir(), 'cg-bench-nginx-'));
const contenders: Contender[] = [{ name: 'direct', url: `http://127.0.0.1:${upstream.port}/`, child: null }];
const notes: string[] = [];
try {
  contenders.push(await startCanaryGate(upstream.port));
  const bare = await startServer('bare-proxy.ts', [`http://127.0.0.1:${upstream.port}`]);
  contenders.push({ name: 'bare undici proxy', url: `http://127.0.0.1:${bare.port}/`, child: bare.child });
  const nginx = nginxPath();
  if (nginx) contenders.push(await startNginx(nginx, upstream.port, dir));
  else notes.push('nginx not installed: its row is missing (apt-get install nginx-light)');
  if (!HAS_TASKSET) notes.push('taskset missing: processes were not pinned');

  const runs = new Map<
    string,
    { rps: number[]; p50: number[]; p90: number[]; p99: number[]; achieved: number[]; late: number[]; cpuPer10k: number[]; rss: number[] }
  >();
  for (const c of contenders) runs.set(c.name, { rps: [], p50: [], p90: [], p99: [], achieved: [], late: [], cpuPer10k: [], rss: [] });
  for (let round = 0; round < P.rounds; round++) {
    // Alternate the order every round so that no contender always runs first (warm caches, thermal state).
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      const r = runs.get(c.name)!;
      // nginx does its work in a worker process, not the master we started: its CPU and RSS are not read.
      const measured = c.child !== null && c.name !== 'nginx';
      const cpuBefore = measured ? cpuSeconds(c.child!.pid!) : 0;
      const saturated = await load({ url: c.url, connections: P.connections, durationS: P.durationS });
      if (measured) {
        r.cpuPer10k.push(((cpuSeconds(c.child!.pid!) - cpuBefore) / saturated.requests) * 10_000);
        r.rss.push(rssBytes(c.child!.pid!));
      }
      r.rps.push(saturated.rps);
      const paced = await openLoop({ url: c.url, rate: P.rate, durationS: P.durationS });
      r.p50.push(paced.p50Ms);
      r.p90.push(paced.p90Ms);
      r.p99.push(paced.p99Ms);
      r.achieved.push(paced.rps);
      r.late.push(paced.late);
    }
  }
  const direct = runs.get('direct')!;
  const figures = contenders.map((c) => {
    const r = runs.get(c.name)!;
    return {
      contender: c.name,
      rps: Math.round(median(r.rps)),
      ratioToDirect: Number((median(r.rps) / median(direct.rps)).toFixed(3)),
      offeredRps: P.rate,
      achievedRps: Math.round(median(r.achieved)),
      lateSends: Math.round(median(r.late)),
      p50Ms: Number(median(r.p50).toFixed(3)),
      p90Ms: Number(median(r.p90).toFixed(3)),
      p99Ms: Number(median(r.p99).toFixed(3)),
      addedP50Ms: Number((median(r.p50) - median(direct.p50)).toFixed(3)),
      addedP90Ms: Number((median(r.p90) - median(direct.p90)).toFixed(3)),
      addedP99Ms: Number((median(r.p99) - median(direct.p99)).toFixed(3)),
      cpuSecondsPer10k: r.cpuPer10k.length ? Number(median(r.cpuPer10k).toFixed(3)) : null,
      rssMiB: r.rss.length ? Number((median(r.rss) / 2 ** 20).toFixed(1)) : null,
    };
  });
  const path = await writeResult('proxy-overhead', { ...P, cores: CORES, notes }, figures);
  console.table(figures);
  console.log(`wrote ${path}`);
} finally {
  for (const c of contenders) if (c.child) await stop(c.child);
  await stop(upstream.child);
  rmSync(dir, { recursive: true, force: true });
}
