/**
 * Memory: RSS of a canary-gate sidecar (child process, pinned) after N1 and N2 proxied requests, to show it stays
 * flat. Defaults 1 M and 5 M; BENCH_MEMORY_REQUESTS="1000000,2000000" to choose. Load from autocannon on the other core.
 * The sidecar runs what the image runs: `node <the Dockerfile ENTRYPOINT's flags> dist/cli/bin.js run` (built first
 * when dist/ is stale); BENCH_GATE_NODE_FLAGS overrides the flags.
 */
import { join } from 'node:path';
import { request } from 'undici';
import { freePort } from '../src/demo/find-redis.ts';
import {
  buildIfStale,
  CORES,
  imageNodeFlags,
  load,
  NODE,
  ROOT,
  rssBytes,
  SMOKE,
  sleep,
  spawnPinned,
  startServer,
  stop,
  writeResult,
} from './lib.ts';

const CHECKPOINTS = SMOKE ? [2000, 4000] : (process.env.BENCH_MEMORY_REQUESTS ?? '1000000,5000000').split(',').map(Number);
const nodeFlags =
  process.env.BENCH_GATE_NODE_FLAGS !== undefined ? process.env.BENCH_GATE_NODE_FLAGS.split(/\s+/).filter(Boolean) : imageNodeFlags();
buildIfStale();
const upstream = await startServer('upstream.ts');
const [proxyPort, adminPort] = [await freePort(), await freePort()];
const sidecar = spawnPinned(CORES.system, NODE, [...nodeFlags, join(ROOT, 'dist/cli/bin.js'), 'run'], {
  ...process.env,
  UPSTREAM_URL: `http://127.0.0.1:${upstream.port}`,
  PROXY_PORT: String(proxyPort),
  ADMIN_PORT: String(adminPort),
  SERVICE_NAME: `bench-mem-${process.pid}`,
  POD_NAME: 'mem-0',
  POD_VERSION: 'v2',
  CANARY_GATE_PROXY_HOST: '127.0.0.1',
  CANARY_GATE_ADMIN_HOST: '127.0.0.1',
  CANARY_GATE_LOG_LEVEL: 'error',
  CANARY_GATE_REDIS_KEY_PREFIX: 'cg-bench',
});
const figures: Array<{ requests: number; rssMiB: number; seconds: number }> = [];
try {
  for (let i = 0; i < 200; i++) {
    const ok = await request(`http://127.0.0.1:${adminPort}/readyz`).then(
      async (r) => (await r.body.dump(), r.statusCode === 200),
      () => false,
    );
    if (ok) break;
    await sleep(50);
  }
  figures.push({ requests: 0, rssMiB: Number((rssBytes(sidecar.pid!) / 2 ** 20).toFixed(1)), seconds: 0 });
  let done = 0;
  const start = Date.now();
  for (const checkpoint of CHECKPOINTS) {
    const r = await load({ url: `http://127.0.0.1:${proxyPort}/`, connections: 10, durationS: 3600, amount: checkpoint - done });
    done += r.requests;
    await sleep(1000);
    figures.push({
      requests: done,
      rssMiB: Number((rssBytes(sidecar.pid!) / 2 ** 20).toFixed(1)),
      seconds: Math.round((Date.now() - start) / 1000),
    });
  }
} finally {
  await stop(sidecar);
  await stop(upstream.child);
}
const path = await writeResult('memory', { checkpoints: CHECKPOINTS, entry: 'dist/cli/bin.js', nodeFlags: nodeFlags.join(' ') }, figures);
console.table(figures);
console.log(`wrote ${path}`);
