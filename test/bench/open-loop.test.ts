/**
 * The open-loop generator measures from each request's due time: when the server stalls, every request that fell due
 * during the stall counts the wait, not only the few that were in flight (coordinated omission, which a closed loop
 * such as autocannon's paced mode hides).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';

const GENERATOR = join(import.meta.dirname, '../../bench/servers/open-loop.ts');
const STALL_MS = 400;

let served = 0;
const server = createServer((_req, res) => {
  // Request 300 of 1000 (0.6 s into a 2 s run at 500 rps) stalls the whole server, as a GC pause or a blocked event loop would.
  if (++served === 300) {
    const until = Date.now() + STALL_MS;
    while (Date.now() < until) {
      // blocking on purpose
    }
  }
  res.end('ok');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
afterAll(() => new Promise<void>((r) => server.close(() => r())));

// With one connection the requests due during the stall wait in the client's queue: still counted from their due time.
it.each([256, 1])(
  'counts a server stall against every request due during it (%i connections)',
  async (connections) => {
    served = 0;
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [GENERATOR, JSON.stringify({ url, rate: 500, durationS: 2, connections })],
      { timeout: 30_000 },
    );
    const summary = JSON.parse(stdout) as { requests: number; errors: number; p90Ms: number; p99Ms: number; maxMs: number };
    expect(summary).toMatchObject({ requests: 1000, errors: 0 });
    expect(summary.maxMs).toBeGreaterThanOrEqual(STALL_MS * 0.9);
    // About 200 requests fell due during the stall, waiting 0..400 ms: a tenth of all requests waited over 200 ms,
    // so the p90 carries the stall. A closed loop would put only the few requests in flight above it.
    expect(summary.p90Ms).toBeGreaterThan(STALL_MS / 4);
    expect(summary.p99Ms).toBeGreaterThan(STALL_MS / 2);
  },
  40_000,
);
