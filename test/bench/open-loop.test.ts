/**
 * The C open-loop generator (bench/servers/open-loop.c) measures from each request's due time: when the server stalls,
 * every request that fell due during the stall counts the wait, not only the few that were in flight (coordinated
 * omission, which a closed loop such as autocannon's paced mode hides). It counts requests it could not send on time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { compileOpenLoop, openLoop } from '../../bench/lib.ts';

const STALL_MS = 400;
const dir = mkdtempSync(join(tmpdir(), 'cg-open-loop-'));
const bin = compileOpenLoop(dir);

let served = 0;
const server = createServer((_req, res) => {
  // Request 300 of 1000 (0.6 s into a 2 s run at 500 rps) stalls the whole server, as a GC pause or a blocked event loop would.
  if (++served === 300) {
    const until = Date.now() + STALL_MS;
    while (Date.now() < until) {
      // blocking on purpose
    }
  }
  res.writeHead(served % 10 === 0 ? 503 : 200, { 'content-length': '2' }).end('ok');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

// With one connection the requests due during the stall wait in the client: still counted from their due time, and
// sent late.
it.each([32, 1])(
  'counts a server stall against every request due during it (%i connections)',
  async (connections) => {
    served = 0;
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const summary = await openLoop(bin, { url, rate: 500, durationS: 2, connections });
    expect(summary).toMatchObject({ requests: 1000, errors: 0, non2xx: 100, offeredRps: 500 });
    expect(summary.maxMs).toBeGreaterThanOrEqual(STALL_MS * 0.9);
    // About 200 requests fell due during the stall, waiting 0..400 ms: a tenth of all requests waited over 200 ms,
    // so the p90 carries the stall. A closed loop would put only the few requests in flight above it.
    expect(summary.p90Ms).toBeGreaterThan(STALL_MS / 4);
    expect(summary.p99Ms).toBeGreaterThan(STALL_MS / 2);
    if (connections === 1) expect(summary.late).toBeGreaterThan(150);
  },
  40_000,
);

it('counts a response without Content-Length as an error, not as a latency', async () => {
  // write() before end(): Node sends the body chunked (end('ok') alone would set Content-Length).
  const chunked = createServer((_req, res) => {
    res.write('ok');
    res.end();
  });
  await new Promise<void>((r) => chunked.listen(0, '127.0.0.1', r));
  try {
    const summary = await openLoop(bin, { url: `http://127.0.0.1:${(chunked.address() as AddressInfo).port}/`, rate: 200, durationS: 0.5 });
    expect(summary).toMatchObject({ requests: 0, errors: 100 });
  } finally {
    await new Promise<void>((r) => chunked.close(() => r()));
  }
});
