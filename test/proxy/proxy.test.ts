/** A real upstream, the real proxy, a real client: forwarding, headers, outcomes and one record per request. */
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createProxyServer, type ProxyServer } from '../../src/proxy/proxy-server.ts';
import { createStatusClassifier } from '../../src/proxy/outcome.ts';
import { freePort } from '../../src/demo/find-redis.ts';
import { silent, sleep } from '../helpers/redis.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

interface Recorded { latencyUs: number; isError: boolean }
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

async function setup(handler: Parameters<typeof startUpstream>[0], env: Record<string, string> = {}, upstreamUrl?: string) {
  const upstream: Upstream | null = upstreamUrl ? null : await startUpstream(handler);
  if (upstream) cleanups.push(() => upstream.close());
  const config = loadConfig({ env: { UPSTREAM_URL: upstreamUrl ?? upstream!.url, PROXY_PORT: '0', CANARY_GATE_PROXY_HOST: '127.0.0.1', ...env } });
  const records: Recorded[] = [];
  const proxy: ProxyServer = createProxyServer({ config: config.proxy, recorder: { record: (latencyUs, isError) => records.push({ latencyUs, isError }) }, logger: silent });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { url: `http://127.0.0.1:${port}`, records, proxy, upstream };
}

const waitRecords = async (records: Recorded[], n: number): Promise<void> => {
  for (let i = 0; i < 200 && records.length < n; i++) await sleep(10);
};

describe('forwarding', () => {
  it('streams a 5 MB body both ways unchanged', async () => {
    const { url, records } = await setup((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res); // echo
    });
    const payload = Buffer.alloc(5 * 1024 * 1024, 7).map((_, i) => i % 251);
    const res = await request(`${url}/echo`, { method: 'POST', body: Readable.from([payload.subarray(0, 1e6), payload.subarray(1e6)]) });
    const back = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    await waitRecords(records, 1);
    expect(records).toEqual([{ latencyUs: expect.any(Number), isError: false }]);
  });

  it('strips hop-by-hop headers both ways, keeps Host, sets X-Forwarded-For and -Proto', async () => {
    let seen: Record<string, string | string[] | undefined> = {};
    const { url } = await setup((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'x-app': '1', 'keep-alive': 'timeout=99', 'x-secret-hop': 'y', connection: 'x-secret-hop' });
      res.end('ok');
    });
    // A raw request: HTTP clients refuse to send a Connection header that names other headers.
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write('GET /h HTTP/1.1\r\nhost: shop.example\r\nx-private: p\r\nconnection: keep-alive, x-private\r\nproxy-authorization: Basic Zm9v\r\nte: trailers\r\nx-forwarded-for: 203.0.113.9\r\n\r\n');
    const head = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.destroy();
    const responseHeaders = Object.fromEntries(head.split('\r\n').slice(1).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    expect(seen.host).toBe('shop.example');
    expect(seen['x-private']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(responseHeaders['x-app']).toBe('1');
    expect(responseHeaders['x-secret-hop']).toBeUndefined();
    expect(responseHeaders['keep-alive']).not.toBe('timeout=99');
  });

  it('records exactly one entry per request under concurrency, with the upstream wait included', async () => {
    const { url, records } = await setup((_req, res) => setTimeout(() => res.end('slow'), 100));
    await Promise.all(Array.from({ length: 50 }, async (_, i) => (await request(`${url}/${i}`)).body.dump()));
    await waitRecords(records, 50);
    await sleep(50);
    expect(records).toHaveLength(50);
    for (const r of records) expect(r.latencyUs).toBeGreaterThanOrEqual(99_000);
  });
});

describe('outcomes', () => {
  it.each([
    { status: 200, errorStatuses: '5xx', isError: false },
    { status: 503, errorStatuses: '5xx', isError: true },
    { status: 404, errorStatuses: '5xx', isError: false },
    { status: 404, errorStatuses: '5xx,4xx', isError: true },
    { status: 429, errorStatuses: '5xx,429', isError: true },
    { status: 428, errorStatuses: '5xx,429', isError: false },
  ])('status $status with errorStatuses $errorStatuses is an error: $isError', async ({ status, errorStatuses, isError }) => {
    const { url, records } = await setup((_req, res) => {
      res.writeHead(status);
      res.end();
    }, { CANARY_GATE_PROXY_ERROR_STATUSES: errorStatuses });
    const res = await request(url);
    await res.body.dump();
    expect(res.statusCode).toBe(status);
    await waitRecords(records, 1);
    expect(records.map((r) => r.isError)).toEqual([isError]);
  });

  it('answers 502 and counts an error when the app refuses connections, then serves again when it is back', async () => {
    const port = await freePort();
    const { url, records, proxy } = await setup(undefined, {}, `http://127.0.0.1:${port}`);
    const res = await request(url);
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('connect_error');
    expect(await res.body.text()).toContain('ECONNREFUSED');
    const app = await startUpstream();
    cleanups.push(() => app.close());
    await new Promise<void>((resolve) => app.server.close(() => resolve()));
    await new Promise<void>((resolve) => app.server.listen(port, '127.0.0.1', () => resolve()));
    const again = await request(url);
    expect(again.statusCode).toBe(200);
    await again.body.dump();
    await waitRecords(records, 2);
    expect(records.map((r) => r.isError)).toEqual([true, false]);
    expect(proxy.stats.outcomes.connect_error).toBe(1);
  });

  it('answers 502 when the app resets the connection', async () => {
    const { url, records, proxy } = await setup((req) => req.socket.destroy());
    const res = await request(url);
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('reset');
    await res.body.dump();
    await waitRecords(records, 1);
    expect(records[0]!.isError).toBe(true);
    expect(proxy.stats.outcomes.reset).toBe(1);
  });

  it('answers 504 when the app is slower than headersTimeout', async () => {
    const { url, records, proxy } = await setup((_req, res) => setTimeout(() => res.end('late'), 1000), { CANARY_GATE_PROXY_HEADERS_TIMEOUT: '150ms' });
    const res = await request(url);
    expect(res.statusCode).toBe(504);
    expect(res.headers['x-canary-gate-error']).toBe('timeout');
    await res.body.dump();
    await waitRecords(records, 1);
    expect(records[0]!.isError).toBe(true);
    expect(proxy.stats.outcomes.timeout).toBe(1);
  });

  it('cuts the client connection and counts an error when the app truncates its body', async () => {
    const { url, records } = await setup((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('only part of it');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const res = await request(url);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await waitRecords(records, 1);
    expect(records[0]!.isError).toBe(true);
  });

  it('records a client that goes away mid-response, but not as an error', async () => {
    const { url, records, proxy } = await setup((_req, res) => {
      res.writeHead(200);
      res.write('start');
      setTimeout(() => res.end('end'), 300);
    });
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write('GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
    await new Promise((r) => socket.once('data', r));
    socket.destroy();
    await waitRecords(records, 1);
    expect(records).toEqual([{ latencyUs: expect.any(Number), isError: false }]);
    expect(proxy.stats.outcomes.client_abort).toBe(1);
  });
});

describe('createStatusClassifier', () => {
  it.each([
    [['5xx'], 500, true], [['5xx'], 599, true], [['5xx'], 499, false], [['4xx'], 400, true], [['429'], 429, true],
    [['429'], 430, false], [[], 500, false], [['5xx', '4xx'], 404, true],
  ] as const)('%j classifies %i as error: %s', (classes, status, expected) => {
    expect(createStatusClassifier(classes)(status)).toBe(expected);
  });

  it('refuses an entry that is neither a class nor a code', () => {
    expect(() => createStatusClassifier(['5XX'])).toThrow(/5XX/);
  });
});
