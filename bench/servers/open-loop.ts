/**
 * Open-loop load generator child, for latency at a fixed offered rate: request i is due at `start + i / rate`
 * whatever happened to the requests before it, and its latency is measured from that due time to the end of its
 * response (the coordinated-omission correction of wrk2 and HdrHistogram), so a stalled proxy cannot hide its stall
 * by delaying the requests behind it. autocannon paces per connection (closed loop) and reports whole milliseconds,
 * which is why this exists; autocannon still measures throughput at saturation.
 *
 * argv[2]: JSON `{ url, rate, durationS, connections? }` (rate in requests/s; connections: the most requests in
 * flight, default 256, so that a slow response never holds back a due one). Prints one JSON line: requests,
 * achieved rps, offered rps, p50/p90/p99/p99.9 ms (from an HDR histogram of µs, 3 significant digits), the
 * largest latency, errors (failed requests), non-2xx responses, and `late`: requests sent more than 1 ms after they
 * were due, which shows a generator-bound run. It polls the event loop near each due time, so it keeps its core busy:
 * pin it to a core of its own.
 */
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';

const o = JSON.parse(process.argv[2] ?? '{}') as { url: string; rate: number; durationS: number; connections?: number };
const origin = new URL(o.url);
const pool = new Pool(origin.origin, { connections: o.connections ?? 256, pipelining: 1 });
const latencyUs = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
const total = Math.max(1, Math.round(o.rate * o.durationS));
const intervalMs = 1000 / o.rate;
let sent = 0;
let finished = 0;
let errors = 0;
let non2xx = 0;
let late = 0;

const fire = (dueMs: number): void => {
  pool.request({ path: origin.pathname + origin.search, method: 'GET' }).then(
    async (r) => {
      await r.body.dump();
      if (r.statusCode < 200 || r.statusCode > 299) non2xx++;
      settle(dueMs);
    },
    () => {
      errors++;
      settle(dueMs);
    },
  );
};
let resolveAll: () => void;
const allDone = new Promise<void>((r) => (resolveAll = r));
const settle = (dueMs: number): void => {
  latencyUs.recordValue(Math.min(60_000_000, Math.max(1, Math.round((performance.now() - dueMs) * 1000))));
  if (++finished === total) resolveAll();
};

const startMs = performance.now() + 10;
const tick = (): void => {
  const nowMs = performance.now();
  while (sent < total) {
    const dueMs = startMs + sent * intervalMs;
    if (dueMs > nowMs) break;
    if (nowMs - dueMs > 1) late++;
    sent++;
    fire(dueMs);
  }
  if (sent === total) return;
  // Timers fire about 1 ms late; within 2 ms of the next due time, poll on the event loop (the generator has its
  // own core) so requests leave within microseconds of their due time.
  const waitMs = startMs + sent * intervalMs - performance.now();
  if (waitMs > 2) setTimeout(tick, waitMs - 1.5);
  else setImmediate(tick);
};
setTimeout(tick, 10);
await allDone;
const seconds = (performance.now() - startMs) / 1000;
const ms = (q: number): number => Number((latencyUs.getValueAtPercentile(q) / 1000).toFixed(3));
process.stdout.write(
  `${JSON.stringify({
    requests: finished,
    rps: finished / seconds,
    offeredRps: o.rate,
    p50Ms: ms(50),
    p90Ms: ms(90),
    p99Ms: ms(99),
    p999Ms: ms(99.9),
    maxMs: Number((latencyUs.maxValue / 1000).toFixed(3)),
    errors,
    non2xx,
    late,
  })}\n`,
);
await pool.close();
