/**
 * Bad input at the edge: requests the HTTP parser refuses get the right 4xx (or a closed connection), are counted,
 * never reach the app, and the proxy keeps serving everyone else.
 */
import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createProxyServer, rejectionOf, type ProxyServer } from '../../src/proxy/proxy-server.ts';
import { silent } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

let app: Upstream;
let proxy: ProxyServer;
let port = 0;
let appRequests = 0;
let recorded = 0;

beforeAll(async () => {
  app = await startUpstream((_req, res) => {
    appRequests++;
    res.end('ok');
  });
  const config = loadConfig({
    env: { UPSTREAM_URL: app.url, PROXY_PORT: '0', CANARY_GATE_PROXY_HOST: '127.0.0.1', CANARY_GATE_PROXY_CLIENT_HEADERS_TIMEOUT: '1s' },
  });
  proxy = createProxyServer({ config: config.proxy, recorder: { record: () => void recorded++ }, logger: silent });
  port = (await proxy.listen()).port;
});
afterAll(async () => {
  await proxy.destroy();
  await app.close();
});

/** Writes raw bytes (optionally in timed pieces) and resolves to everything the proxy sent back before closing. */
function raw(pieces: Array<string | { waitMs: number }>): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => undefined);
    void (async () => {
      for (const piece of pieces) {
        if (typeof piece === 'string') socket.write(piece);
        else await new Promise((r) => setTimeout(r, piece.waitMs));
        if (socket.destroyed) return;
      }
    })();
  });
}

async function stillServes(): Promise<void> {
  const res = await request(`http://127.0.0.1:${port}/after`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('ok');
}

describe('requests refused at the edge', () => {
  it.each([
    ['an oversized header', `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'header_overflow'],
    ['an oversized URL', `GET /${'u'.repeat(20_000)} HTTP/1.1\r\nhost: a\r\n\r\n`, 431, 'header_overflow'],
    ['an invalid method', 'G@T / HTTP/1.1\r\nhost: a\r\n\r\n', 400, 'malformed'],
    [
      'Content-Length with Transfer-Encoding (smuggling)',
      'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
      'malformed',
    ],
    [
      'two different Content-Lengths',
      'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcde',
      400,
      'malformed',
    ],
    ['a bad chunk size', 'POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', 400, 'malformed'],
  ])('%s gets %i, is counted, never reaches the app', async (_name, bytes, status, reason) => {
    const before = { app: appRequests, rejected: proxy.stats.rejected[reason] ?? 0 };
    const answer = await raw([bytes]);
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(proxy.stats.rejected[reason]).toBe(before.rejected + 1);
    expect(appRequests).toBe(before.app);
    await stillServes();
  });

  it('closes a slowloris connection that trickles its headers past clientHeadersTimeout with 408', async () => {
    const before = proxy.stats.rejected.timeout ?? 0;
    const trickle: Array<string | { waitMs: number }> = ['GET / HTTP/1.1\r\n'];
    for (let i = 0; i < 12; i++) trickle.push({ waitMs: 250 }, `x-slow-${i}: 1\r\n`);
    const answer = await raw(trickle);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(proxy.stats.rejected.timeout).toBe(before + 1);
    await stillServes();
  });

  it('does not record refused requests as requests of the version', async () => {
    const before = recorded;
    await raw(['G@T / HTTP/1.1\r\n\r\n']);
    expect(recorded).toBe(before);
  });
});

describe('rejectionOf', () => {
  it.each([
    ['HPE_HEADER_OVERFLOW', 431],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408],
    ['HPE_HEADERS_TIMEOUT', 408],
    ['HPE_INVALID_METHOD', 400],
    ['HPE_UNEXPECTED_CONTENT_LENGTH', 400],
    [undefined, 400],
  ] as const)('%s -> %i', (code, status) => {
    expect(rejectionOf(code)?.status).toBe(status);
  });
  it('gives no answer to a client that reset its connection', () => {
    expect(rejectionOf('ECONNRESET')).toBeNull();
  });
});
