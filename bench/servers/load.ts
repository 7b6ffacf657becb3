/**
 * Load generator child: runs autocannon (closed loop) with the options given as JSON in argv[2] and prints one JSON
 * line: requests, achieved rps, p50/p99 ms, errors and non-2xx responses. Latency at a fixed offered rate is
 * open-loop.ts's job.
 */
import autocannon from 'autocannon';

const o = JSON.parse(process.argv[2] ?? '{}') as { url: string; connections: number; durationS: number; amount?: number };
const result = await autocannon({
  url: o.url,
  connections: o.connections,
  duration: o.durationS,
  ...(o.amount ? { amount: o.amount } : {}),
});
const requests = result.requests.total;
const seconds = (result.duration ?? o.durationS) || o.durationS;
process.stdout.write(
  `${JSON.stringify({
    requests,
    rps: requests / seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  })}\n`,
);
