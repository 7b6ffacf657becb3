/**
 * RSS of a sidecar (the lease holder, 50 rps through its proxy) while another client puts six 200 MB fields into the
 * slot hashes its window reaches and a 200 MB decision record at its latch (issue 15; README, Failure modes).
 * Prints one JSON line: RSS before (after 15 s of load), the peak over the next 30 s, and what the evaluator saw.
 * Not part of run-all: it needs about 2 GB in a private redis-server.
 *
 *   node bench/hostile-rss.ts [ROOT]   (ROOT: a checkout to measure, default this one)
 */
const root = process.argv[2] ?? new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const { buildSidecar } = await import(`${root}/src/app/sidecar.ts`);
const { loadConfig } = await import(`${root}/src/config/load.ts`);
const { startRedisServer } = await import(`${root}/src/demo/find-redis.ts`);
const { serviceKeys } = await import(`${root}/src/core/keys.ts`);
const { slotIndexAt } = await import(`${root}/src/core/slot-recorder.ts`);
const { Redis } = await import('ioredis');
const http = await import('node:http');
const app = http.createServer((_q, s) => s.end('ok'));
await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
const appPort = (app.address() as { port: number }).port;
const server = await startRedisServer(['--proto-max-bulk-len', '1gb']);
const config = loadConfig({
  env: {
    SERVICE_NAME: 'rss',
    POD_NAME: 'p1',
    POD_VERSION: 'v1',
    UPSTREAM_URL: `http://127.0.0.1:${appPort}`,
    REDIS_URL: server.url,
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    CANARY_GATE_PROXY_HOST: '127.0.0.1',
    CANARY_GATE_ADMIN_HOST: '127.0.0.1',
    CANARY_GATE_LOG_LEVEL: 'silent',
  },
});
const sidecar = buildSidecar(config, {});
const { proxyPort } = await sidecar.start();
const mib = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const writer = new Redis(server.url);
const keys = serviceKeys(config.redis.keyPrefix, config.service);
// Light load: 50 rps through the proxy for the whole run.
const load = setInterval(() => {
  for (let i = 0; i < 5; i++) http.get(`http://127.0.0.1:${proxyPort}/`, (r) => r.resume()).on('error', () => undefined);
}, 100);
await new Promise((r) => setTimeout(r, 15_000));
const before = mib();
const slot = slotIndexAt(Date.now(), config.window.slot);
// 200 MB fields in the next 3 slots of both versions (built inside Redis), and a 200 MB decision record.
for (const v of ['v1', 'v2'])
  for (let i = 0; i < 3; i++) {
    await writer.eval(
      "redis.call('HSET', KEYS[1], 'huge', string.rep('x', 200000000)) redis.call('PEXPIRE', KEYS[1], 120000) return 1",
      1,
      keys.slot(v, slot + i),
    );
  }
await writer.eval("redis.call('SET', KEYS[1], string.rep('x', 200000000)) return 1", 1, keys.decision);
let peak = before;
const t0 = Date.now();
while (Date.now() - t0 < 30_000) {
  await new Promise((r) => setTimeout(r, 500));
  peak = Math.max(peak, mib());
}
const s = sidecar.status();
console.log(
  JSON.stringify({
    rssBeforeMiB: before,
    rssPeakMiB: peak,
    rssEndMiB: mib(),
    evaluations: s.evaluator.evaluations,
    redisHolds: s.evaluator.redisHolds,
    corrupt: s.redis.corruptPayloads,
    lastError: s.lastError,
    latch: typeof s.latch === 'string' ? s.latch : s.latch === null ? null : 'decision',
  }),
);
clearInterval(load);
await sidecar.destroy();
writer.disconnect();
await server.stop();
app.close();
process.exit(0);
