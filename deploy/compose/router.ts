/**
 * The compose stack's traffic router: sends the flag's percentage of requests to the canary's sidecar and the rest to
 * the baseline's, and everything to the baseline when the flag says 0 or is missing or unreadable. The same rule as
 * the demo's router (src/demo/router.ts), on a fixed port of its container; it stands in for the ingress rule or
 * Istio weight a real rollout drives from the same Redis key. GET /__router answers its state as JSON.
 *
 * Environment: REDIS_URL (redis://redis:6379), FLAG_KEY (feature:{demo-api}:v2_traffic_percentage, the compose service's flag), BASELINE_URL, CANARY_URL,
 * PORT (8000), HOST (0.0.0.0), POLL_MS (200). Run with Node 24: node deploy/compose/router.ts
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { forwardRequest } from '../../src/proxy/forward.ts';

const env = process.env;
const flagKey = env.FLAG_KEY ?? 'feature:{demo-api}:v2_traffic_percentage';
const baselineUrl = env.BASELINE_URL ?? 'http://sidecar-v1:8080';
const canaryUrl = env.CANARY_URL ?? 'http://sidecar-v2:8080';
const pools = { baseline: new Pool(baselineUrl, { connections: 32 }), canary: new Pool(canaryUrl, { connections: 32 }) };
// Fail fast: a dead Redis must never hold a request; the router then sends everything to the baseline.
const redis = new Redis(env.REDIS_URL ?? 'redis://redis:6379', { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 500 });
let lastError = '';
redis.on('error', (err: Error) => {
  if (err.message !== lastError) process.stderr.write(`router: redis error: ${err.message}\n`);
  lastError = err.message;
});

const routed = { baseline: 0, canary: 0 };
let percentage = 0;
let flag: string | null = null;
let credit = 0;
const poll = async (): Promise<void> => {
  try {
    flag = await redis.get(flagKey);
    const value = Number(flag);
    percentage = flag !== null && Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0;
  } catch {
    percentage = 0; // unreadable flag: the safe side is the baseline
  }
};
const timer = setInterval(() => void poll(), Number(env.POLL_MS ?? 200));

const server = createServer((req, res) => {
  if (req.url === '/__router') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ flagKey, flag, percentage, routed, baselineUrl, canaryUrl }));
    return;
  }
  // Smooth weighted split: exact shares over any run of requests, no randomness.
  credit += percentage;
  const toCanary = credit >= 100;
  if (toCanary) credit -= 100;
  const to = toCanary ? 'canary' : 'baseline';
  routed[to]++;
  void forwardRequest(pools[to], req, res, {});
});
server.keepAliveTimeout = 10_000;

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    clearInterval(timer);
    server.close();
    server.closeAllConnections();
    redis.disconnect();
    void Promise.all([pools.baseline.close(), pools.canary.close()]).then(() => process.exit(0));
  });
}

// Without an offline queue, a GET before the connection is ready fails: wait for it (at most 5 s) before the first read.
await new Promise<void>((resolve) => {
  if (redis.status === 'ready') return resolve();
  const timer = setTimeout(resolve, 5000);
  redis.once('ready', () => {
    clearTimeout(timer);
    resolve();
  });
});
await poll();
const host = env.HOST ?? '0.0.0.0';
await new Promise<void>((resolve) => server.listen(Number(env.PORT ?? 8000), host, () => resolve()));
process.stdout.write(`router listening on ${host}:${(server.address() as AddressInfo).port}: ${flagKey} = ${flag ?? '(unset)'}, baseline ${baselineUrl}, canary ${canaryUrl}\n`);
