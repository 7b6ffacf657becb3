/**
 * forwardRequest on its own (as the demo router uses it): a real upstream, a real front server that only forwards,
 * a real client. Bodies both ways, headers, backpressure, and the result of every kind of failure.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher, Pool, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { forwardRequest, type ForwardOptions, type ForwardResult } from '../../src/proxy/forward.ts';
import { createTrustedProxies } from '../../src/proxy/trusted-proxies.ts';
import { closedPort, leaveMidResponse, ok200, startUpstream, type Upstream } from '../helpers/upstream.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});
const client = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => client.close());

interface Front {
  readonly url: string;
  readonly port: number;
  /** forwardRequest's results, in the order the requests settled. */
  readonly results: ForwardResult[];
}

/** A server that does nothing but forwardRequest to `upstreamUrl`. */
async function startFront(upstreamUrl: string, poolOptions: Pool.Options = {}, forwardOptions?: ForwardOptions): Promise<Front> {
  const pool = new Pool(upstreamUrl, { connections: 8, pipelining: 1, ...poolOptions });
  const results: ForwardResult[] = [];
  const server = createServer((req, res) => {
    void forwardRequest(pool, req, res, forwardOptions).then((result) => results.push(result));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await pool.destroy();
  });
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, results };
}

async function setup(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  poolOptions: Pool.Options = {},
  forwardOptions?: ForwardOptions,
): Promise<{ front: Front; upstream: Upstream }> {
  const upstream = await startUpstream(handler);
  cleanups.push(() => upstream.close());
  return { front: await startFront(upstream.url, poolOptions, forwardOptions), upstream };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
/** 5 MB that is not one repeated byte, so that a reordered or dropped chunk changes the hash. */
const FIVE_MB = Buffer.from(Array.from({ length: 5 * 1024 * 1024 }, (_, i) => (i * 31 + (i >> 12)) % 251));

/** Sends raw bytes (HTTP clients refuse some of the headers tested here) and reads until the server closes. */
async function rawExchange(port: number, text: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.write(text);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  const raw = Buffer.concat(chunks).toString('latin1');
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
  return { status: Number(statusLine.split(' ')[1]), headers, body: raw.slice(split + 4) };
}

/** After a fault, the same front and pool still forward a normal request. */
async function expectServesAgain(front: Front, upstream: Upstream): Promise<void> {
  upstream.handle(ok200);
  const res = await request(`${front.url}/again`, { dispatcher: client });
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('ok');
}

/** The proxy answered 502 with the `reset` outcome, recorded one result, and serves the next request. */
async function expectResetThenServes(res: Dispatcher.ResponseData, front: Front, upstream: Upstream): Promise<void> {
  expect(res.statusCode).toBe(502);
  expect(res.headers['x-canary-gate-error']).toBe('reset');
  await res.body.dump();
  expect(front.results).toHaveLength(1);
  expect(front.results[0]).toMatchObject({ status: 502, outcome: 'reset' });
  await expectServesAgain(front, upstream);
}

describe('bodies', () => {
  it('streams a 5 MB response body unchanged', async () => {
    const { front } = await setup((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      Readable.from([FIVE_MB.subarray(0, 1_000_000), FIVE_MB.subarray(1_000_000)]).pipe(res);
    });
    const res = await request(`${front.url}/download`, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(sha256(FIVE_MB));
    await waitFor(() => front.results.length === 1, 'the result');
    expect(front.results).toMatchObject([{ status: 200, outcome: 'ok' }]);
  });

  it.each([
    {
      framing: 'chunked',
      body: () => Readable.from([FIVE_MB.subarray(0, 1_000_000), FIVE_MB.subarray(1_000_000, 3_000_000), FIVE_MB.subarray(3_000_000)]),
      length: undefined,
    },
    { framing: 'content-length', body: () => FIVE_MB, length: String(FIVE_MB.length) },
  ])('streams a 5 MB $framing request body to the upstream and its echo back unchanged', async ({ body, length }) => {
    let seenLength: string | undefined = 'unset';
    const { front } = await setup((req, res) => {
      seenLength = req.headers['content-length'];
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
    });
    const res = await request(`${front.url}/echo`, { method: 'POST', body: body(), dispatcher: client });
    expect(res.statusCode).toBe(200);
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(sha256(FIVE_MB));
    expect(seenLength).toBe(length);
  });

  it('does not buffer a response the client does not read (backpressure reaches the upstream)', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 1);
    const totalBytes = 512 * chunk.length;
    let sentBytes = 0;
    const { front } = await setup((_req, res) => {
      res.writeHead(200, { 'content-length': String(totalBytes) });
      const pump = (): void => {
        while (sentBytes < totalBytes && !res.destroyed) {
          sentBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const res = await request(`${front.url}/big`, { dispatcher: client });
    // The client reads nothing: the upstream must stall once the buffers along the way are full.
    let last = -1;
    let stableSince = performance.now();
    await waitFor(() => {
      if (sentBytes !== last) {
        last = sentBytes;
        stableSince = performance.now();
      }
      return performance.now() - stableSince > 200;
    }, 'the upstream to stall');
    // Socket buffers on loopback may autotune to tens of MB; without backpressure all 512 MB would be read.
    expect(sentBytes).toBeLessThan(totalBytes / 4);
    res.body.destroy();
    await waitFor(() => front.results.length === 1, 'the result');
    expect(front.results[0]).toMatchObject({ status: 200, outcome: 'client_abort' });
  });

  it('forwards HEAD without a body', async () => {
    const { front } = await setup((_req, res) => {
      res.writeHead(200, { 'content-length': '1234', 'x-app': 'h' });
      res.end();
    });
    const res = await request(`${front.url}/h`, { method: 'HEAD', dispatcher: client });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('1234');
    expect(res.headers['x-app']).toBe('h');
    expect(await res.body.text()).toBe('');
  });

  it('answers Expect: 100-continue itself and forwards the body without the Expect header', async () => {
    let seen: IncomingMessage['headers'] = {};
    const { front } = await setup((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'content-length': req.headers['content-length'] });
      req.pipe(res);
    });
    const socket = connect(front.port, '127.0.0.1');
    let received = '';
    let sentBody = false;
    socket.on('data', (d: Buffer) => {
      received += d.toString();
      if (!sentBody && received.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sentBody = true;
        socket.write('hello');
      }
    });
    socket.write('POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    expect(received).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    expect(received.endsWith('hello')).toBe(true);
    expect(seen.expect).toBeUndefined();
    expect(front.results).toMatchObject([{ status: 200, outcome: 'ok' }]);
  });

  it('answers 400 to a request undici cannot send (OPTIONS *), without calling it an upstream failure', async () => {
    let upstreamCalls = 0;
    const { front } = await setup((_req, res) => {
      upstreamCalls++;
      res.end();
    });
    const res = await rawExchange(front.port, 'OPTIONS * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.headers['x-canary-gate-error']).toBe('bad_request');
    expect(upstreamCalls).toBe(0);
    expect(front.results).toMatchObject([{ status: 400, outcome: 'bad_request', errorCode: 'UND_ERR_INVALID_ARG', appLatencyUs: null }]);
  });
});

describe('headers', () => {
  it('strips hop-by-hop headers both ways, and those the Connection header names; keeps Host; appends X-Forwarded-For; sets X-Forwarded-Proto', async () => {
    let seen: IncomingMessage['headers'] = {};
    const { front } = await setup((req, res) => {
      seen = req.headers;
      res.writeHead(200, {
        'x-app': '1',
        'keep-alive': 'timeout=99',
        'proxy-authenticate': 'Basic',
        'x-upstream-hop': 'y',
        connection: 'x-upstream-hop',
        'content-length': '4',
      });
      res.end('body');
    });
    const res = await rawExchange(
      front.port,
      'GET /h?q=1 HTTP/1.1\r\nhost: shop.example\r\nx-private: p\r\nx-kept: k\r\nconnection: close, x-private\r\nkeep-alive: timeout=5\r\n' +
        'proxy-authorization: Basic Zm9v\r\nte: trailers\r\nupgrade: h2c\r\nx-forwarded-for: 203.0.113.9\r\n\r\n',
    );
    expect(seen.host).toBe('shop.example');
    expect(seen['x-kept']).toBe('k');
    for (const name of ['x-private', 'keep-alive', 'proxy-authorization', 'te', 'upgrade']) expect(seen[name], name).toBeUndefined();
    expect(seen.connection).not.toContain('x-private');
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');

    expect(res.status).toBe(200);
    expect(res.headers['x-app']).toBe('1');
    for (const name of ['x-upstream-hop', 'proxy-authenticate']) expect(res.headers[name], name).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=99');
    expect(res.body).toBe('body');
  });

  it.each([
    { name: 'no forwarding headers', sent: {}, options: undefined, forwardedFor: '127.0.0.1', proto: 'http' },
    {
      name: "a client's X-Forwarded-Proto is replaced",
      sent: { 'x-forwarded-proto': 'https' },
      options: undefined,
      forwardedFor: '127.0.0.1',
      proto: 'http',
    },
    {
      name: "a trusted proxy's X-Forwarded-Proto is kept",
      sent: { 'x-forwarded-proto': 'https' },
      options: { isTrustedProxy: createTrustedProxies(['127.0.0.0/8']) },
      forwardedFor: '127.0.0.1',
      proto: 'https',
    },
    {
      name: 'a trusted proxy that sends none gets the forwardedProto option',
      sent: {},
      options: { forwardedProto: 'https', isTrustedProxy: createTrustedProxies(['127.0.0.1']) },
      forwardedFor: '127.0.0.1',
      proto: 'https',
    },
    {
      name: 'an untrusted list does not trust the client',
      sent: { 'x-forwarded-proto': 'https' },
      options: { isTrustedProxy: createTrustedProxies(['10.0.0.0/8']) },
      forwardedFor: '127.0.0.1',
      proto: 'http',
    },
    {
      name: 'a chain of proxies',
      sent: { 'x-forwarded-for': '198.51.100.1, 10.0.0.2' },
      options: undefined,
      forwardedFor: '198.51.100.1, 10.0.0.2, 127.0.0.1',
      proto: 'http',
    },
    {
      name: "a client's X-Forwarded-Client-Cert is dropped (an identity it never proved)",
      sent: { 'x-forwarded-client-cert': 'Subject="CN=admin"' },
      options: undefined,
      forwardedFor: '127.0.0.1',
      proto: 'http',
      clientCert: undefined,
    },
    {
      name: "a trusted proxy's X-Forwarded-Client-Cert is kept",
      sent: { 'x-forwarded-client-cert': 'Subject="CN=alice"' },
      options: { isTrustedProxy: createTrustedProxies(['127.0.0.1']) },
      forwardedFor: '127.0.0.1',
      proto: 'http',
      clientCert: 'Subject="CN=alice"',
    },
  ])('X-Forwarded-*: $name', async ({ sent, options, forwardedFor, proto, ...rest }) => {
    let seen: IncomingMessage['headers'] = {};
    const { front } = await setup(
      (req, res) => {
        seen = req.headers;
        res.end();
      },
      {},
      options,
    );
    const res = await request(`${front.url}/`, { headers: sent, dispatcher: client });
    await res.body.dump();
    expect(seen['x-forwarded-for']).toBe(forwardedFor);
    expect(seen['x-forwarded-proto']).toBe(proto);
    expect(seen['x-forwarded-client-cert']).toBe('clientCert' in rest ? rest.clientCert : undefined);
    expect(seen.host).toBe(`127.0.0.1:${front.port}`);
  });

  it('a Connection header cannot strip Host or the X-Forwarded-* headers the proxy sets', async () => {
    let seen: IncomingMessage['headers'] = {};
    const { front } = await setup((req, res) => {
      seen = req.headers;
      res.end();
    });
    const res = await rawExchange(
      front.port,
      'GET / HTTP/1.1\r\nhost: shop.example\r\nx-forwarded-for: 10.9.9.9\r\nx-forwarded-proto: https\r\n' +
        'connection: close, host, x-forwarded-for, x-forwarded-proto\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect(seen.host).toBe('shop.example');
    // The client's own X-Forwarded-* were hop-by-hop as it asked; the proxy's are set after that, so they stay.
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
  });

  it('rewrites an absolute-form target to origin-form, with the Host it names', async () => {
    let seen: { url?: string; host?: string } = {};
    const { front } = await setup((req, res) => {
      seen = { url: req.url, host: req.headers.host };
      res.end();
    });
    const res = await rawExchange(
      front.port,
      'GET http://shop.example:8081/cart/items?page=2 HTTP/1.1\r\nhost: other.example\r\nconnection: close\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect(seen).toEqual({ url: '/cart/items?page=2', host: 'shop.example:8081' });
    expect(front.results).toMatchObject([{ status: 200, outcome: 'ok' }]);
  });

  it.each([
    {
      name: 'two Host headers',
      head: 'GET / HTTP/1.1\r\nhost: a.example\r\nHost: b.example\r\nconnection: close\r\n\r\n',
      code: 'CG_HOST_DUPLICATE',
    },
    {
      name: 'the same Host twice',
      head: 'GET / HTTP/1.1\r\nhost: a.example\r\nhost: a.example\r\nconnection: close\r\n\r\n',
      code: 'CG_HOST_DUPLICATE',
    },
    {
      name: 'an absolute-form target that is not http(s)',
      head: 'GET ftp://files.example/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n',
      code: 'CG_TARGET_INVALID',
    },
  ])('answers 400 to $name and forwards nothing', async ({ head, code }) => {
    let upstreamCalls = 0;
    const { front } = await setup((_req, res) => {
      upstreamCalls++;
      res.end();
    });
    const res = await rawExchange(front.port, head);
    expect(res.status).toBe(400);
    expect(res.headers['x-canary-gate-error']).toBe('bad_request');
    expect(res.body).toContain(code);
    expect(upstreamCalls).toBe(0);
    expect(front.results).toEqual([{ status: 400, outcome: 'bad_request', errorCode: code, appLatencyUs: null }]);
  });

  it('passes repeated response headers (set-cookie) through as they are', async () => {
    const { front } = await setup((_req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end();
    });
    const res = await request(front.url, { dispatcher: client });
    await res.body.dump();
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });
});

describe('failures', () => {
  it('answers 502 connect_error when the upstream refuses connections', async () => {
    const front = await startFront(`http://127.0.0.1:${await closedPort()}`);
    const res = await request(`${front.url}/x`, { dispatcher: client });
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('connect_error');
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await res.body.text()).trim()).toBe('canary-gate: upstream connect_error (ECONNREFUSED)');
    expect(front.results).toMatchObject([{ status: 502, outcome: 'connect_error', errorCode: 'ECONNREFUSED' }]);
  });

  it('still answers 502 to a client that was uploading a body to a refusing upstream', async () => {
    const front = await startFront(`http://127.0.0.1:${await closedPort()}`);
    const res = await request(`${front.url}/upload`, { method: 'POST', body: FIVE_MB, dispatcher: client });
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('connect_error');
    await res.body.dump();
    expect(front.results).toMatchObject([{ status: 502, outcome: 'connect_error', errorCode: 'ECONNREFUSED' }]);
  });

  it('answers 502 reset when the upstream drops the connection before answering', async () => {
    const { front, upstream } = await setup((req) => req.socket.destroy());
    const res = await request(`${front.url}/x`, { dispatcher: client });
    await expectResetThenServes(res, front, upstream);
  });

  it('answers 502 reset (not a client abort) when the upstream drops the connection during an upload', async () => {
    const { front, upstream } = await setup((req) => req.once('data', () => req.socket.destroy()));
    const res = await request(`${front.url}/upload`, { method: 'POST', body: FIVE_MB, dispatcher: client });
    await expectResetThenServes(res, front, upstream);
  });

  it('answers 504 timeout when the upstream sends no headers within headersTimeout', async () => {
    const { front, upstream } = await setup(() => undefined, { headersTimeout: 200 });
    const res = await request(`${front.url}/slow`, { dispatcher: client });
    expect(res.statusCode).toBe(504);
    expect(res.headers['x-canary-gate-error']).toBe('timeout');
    expect((await res.body.text()).trim()).toBe('canary-gate: upstream timeout (UND_ERR_HEADERS_TIMEOUT)');
    expect(front.results).toMatchObject([{ status: 504, outcome: 'timeout', errorCode: 'UND_ERR_HEADERS_TIMEOUT' }]);
    await expectServesAgain(front, upstream);
  });

  it.each([
    { framing: 'content-length', headers: { 'content-length': '1000' } },
    { framing: 'chunked', headers: {} },
  ])('cuts the client connection when the upstream cuts a $framing body after the headers', async ({ headers }) => {
    const { front, upstream } = await setup((_req, res) => {
      res.writeHead(200, headers);
      res.write('only part of it', () => setTimeout(() => res.socket?.destroy(), 10));
    });
    const res = await request(`${front.url}/cut`, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await waitFor(() => front.results.length === 1, 'the result');
    expect(front.results[0]).toMatchObject({ status: 200, outcome: 'reset' });
    await expectServesAgain(front, upstream);
  });

  it('cuts the client connection when the upstream body stalls past bodyTimeout', async () => {
    const { front, upstream } = await setup(
      (_req, res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('a first chunk, then nothing');
      },
      { bodyTimeout: 200 },
    );
    const res = await request(`${front.url}/stall`, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await waitFor(() => front.results.length === 1, 'the result');
    expect(front.results).toMatchObject([{ status: 200, outcome: 'timeout', errorCode: 'UND_ERR_BODY_TIMEOUT' }]);
    await expectServesAgain(front, upstream);
  });

  it('aborts the upstream request when the client goes away mid-response', async () => {
    let upstreamCut = false;
    const { front, upstream } = await setup((_req, res) => {
      res.on('close', () => {
        upstreamCut = !res.writableFinished;
      });
      res.writeHead(200);
      res.write('start');
    });
    await leaveMidResponse(front.port);
    await waitFor(() => front.results.length === 1 && upstreamCut, 'the result and the upstream abort');
    expect(front.results).toMatchObject([{ status: 200, outcome: 'client_abort' }]);
    await expectServesAgain(front, upstream);
  });

  it('aborts the upstream request when the client goes away mid-upload', async () => {
    let upstreamReceived = 0;
    let upstreamAborted = false;
    const { front, upstream } = await setup((req) => {
      req.on('data', (d: Buffer) => (upstreamReceived += d.length));
      req.on('close', () => (upstreamAborted = !req.complete));
    });
    const socket = connect(front.port, '127.0.0.1');
    socket.write(`POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: ${1024 * 1024}\r\n\r\n`);
    socket.write(Buffer.alloc(64 * 1024, 2));
    await waitFor(() => upstreamReceived > 0, 'the upstream to receive part of the body');
    socket.destroy();
    await waitFor(() => front.results.length === 1 && upstreamAborted, 'the result and the upstream abort');
    expect(front.results).toMatchObject([{ status: 0, outcome: 'client_abort' }]);
    await expectServesAgain(front, upstream);
  });
});
