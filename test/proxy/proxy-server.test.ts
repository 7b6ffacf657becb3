/**
 * The proxy server: a real upstream, the real proxy, a real client, and a small recorder that keeps its calls.
 * What is recorded (once per request, error or not, latency), the stats, and how close() drains.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/config/logger.ts';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest, type ProxyServer } from '../../src/proxy/proxy-server.ts';
import { loopbackProxyConfig } from '../helpers/proxy-config.ts';
import { closedPort, leaveMidResponse, ok200, startUpstream, type Upstream } from '../helpers/upstream.ts';

/** What a test looks at of a recorded request: the judged latency and whether it was an error. */
interface Recorded {
  readonly latencyUs: number | null;
  readonly isError: boolean;
  readonly request: ProxiedRequest;
}

const silent = createLogger('silent');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});
const client = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => client.close());

/** Shorter timeouts than the shared loopback config, and no minimum body rate. */
function proxyConfig(upstream: string, overrides: Partial<Config['proxy']> = {}): Config['proxy'] {
  return loopbackProxyConfig(upstream, {
    headersTimeout: 5000,
    bodyTimeout: 5000,
    clientHeadersTimeout: 5000,
    clientBodyTimeout: 5000,
    clientBodyMinRate: 0,
    ...overrides,
  });
}

interface Setup {
  readonly url: string;
  readonly port: number;
  readonly records: Recorded[];
  readonly proxy: ProxyServer;
}

async function startProxy(upstreamUrl: string, overrides: Partial<Config['proxy']> = {}, now?: () => number): Promise<Setup> {
  const records: Recorded[] = [];
  const recorder = {
    record: (request: ProxiedRequest) => void records.push({ latencyUs: request.appLatencyUs, isError: request.isError, request }),
  };
  const proxy = createProxyServer({ config: proxyConfig(upstreamUrl, overrides), recorder, logger: silent, ...(now ? { now } : {}) });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { url: `http://127.0.0.1:${port}`, port, records, proxy };
}

async function setup(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  overrides: Partial<Config['proxy']> = {},
  now?: () => number,
): Promise<Setup & { upstream: Upstream }> {
  const upstream = await startUpstream(handler);
  cleanups.push(() => upstream.close());
  return { ...(await startProxy(upstream.url, overrides, now)), upstream };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Waits until no request is in flight, then checks that exactly `n` were recorded. A second record for one request
 * would also have driven inFlight below zero, so this catches duplicates without sleeping.
 */
async function expectRecords(p: Setup, n: number): Promise<Recorded[]> {
  await waitFor(() => p.proxy.stats.inFlight <= 0 && p.records.length >= n, `${n} records`);
  expect(p.proxy.stats.inFlight).toBe(0);
  expect(p.records).toHaveLength(n);
  return p.records;
}

async function get(url: string): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(url, { dispatcher: client });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** Waits at least `ms` by the same clock the proxy uses (a timer alone may fire a fraction of a ms early). */
async function waitAtLeast(ms: number): Promise<void> {
  const start = performance.now();
  for (let left = ms; left > 0; left = ms - (performance.now() - start))
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(left)));
}

/** After a fault the proxy still serves: one more normal request, recorded as a success. */
async function expectServesAgain(p: Setup, upstream: Upstream, recordedBefore: number): Promise<void> {
  upstream.handle(ok200);
  const res = await get(`${p.url}/again`);
  expect(res.status).toBe(200);
  expect(res.text).toBe('ok');
  const records = await expectRecords(p, recordedBefore + 1);
  expect(records.at(-1)?.isError).toBe(false);
}

describe('recording', () => {
  it.each([
    { status: 200, errorStatuses: ['5xx'], isError: false, outcome: 'ok' },
    { status: 503, errorStatuses: ['5xx'], isError: true, outcome: 'status_error' },
    { status: 500, errorStatuses: ['5xx'], isError: true, outcome: 'status_error' },
    { status: 404, errorStatuses: ['5xx'], isError: false, outcome: 'ok' },
    { status: 404, errorStatuses: ['5xx', '4xx'], isError: true, outcome: 'status_error' },
    { status: 429, errorStatuses: ['5xx', '429'], isError: true, outcome: 'status_error' },
    { status: 428, errorStatuses: ['5xx', '429'], isError: false, outcome: 'ok' },
    { status: 503, errorStatuses: ['4xx'], isError: false, outcome: 'ok' },
  ] as const)('status $status with errorStatuses $errorStatuses: error $isError', async ({ status, errorStatuses, isError, outcome }) => {
    const p = await setup(
      (_req, res) => {
        res.writeHead(status);
        res.end();
      },
      { errorStatuses: [...errorStatuses] },
    );
    const res = await get(p.url);
    expect(res.status).toBe(status);
    const records = await expectRecords(p, 1);
    expect(records[0]?.isError).toBe(isError);
    expect(p.proxy.stats.outcomes[outcome]).toBe(1);
  });

  it('records exactly one entry per request under concurrency', async () => {
    const p = await setup((req, res) => setTimeout(() => res.end(req.url), 20));
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${p.url}/${i}`)));
    expect(answers.map((a) => a.text)).toEqual(Array.from({ length: 50 }, (_, i) => `/${i}`));
    const records = await expectRecords(p, 50);
    expect(records.every((r) => !r.isError)).toBe(true);
    expect(p.proxy.stats.outcomes.ok).toBe(50);
  });

  it('includes the upstream wait in the recorded latency', async () => {
    const p = await setup((_req, res) => void waitAtLeast(100).then(() => res.end('slow')));
    await get(p.url);
    const [record] = await expectRecords(p, 1);
    expect(record?.latencyUs).toBeGreaterThanOrEqual(100_000);
    expect(record?.request.totalLatencyUs).toBeGreaterThanOrEqual(record?.latencyUs ?? Infinity);
  });

  it('measures with the injected clock, in µs: the app from dispatch to the upstream end, the total from arrival to the response end', async () => {
    let clockMs = 1_000;
    const p = await setup(
      (_req, res) => {
        clockMs = 1_012.5; // the app's 12.5 ms, between the dispatch and the upstream's end
        res.end();
      },
      {},
      () => clockMs,
    );
    p.proxy.server.prependListener('request', (_req, res: ServerResponse) => {
      res.once('finish', () => (clockMs = 1_020)); // after the upstream's end, before the response's close
    });
    await get(p.url);
    const [record] = await expectRecords(p, 1);
    expect(record?.request).toEqual({
      appLatencyUs: 12_500,
      totalLatencyUs: 20_000,
      queueWaitUs: 0,
      isError: false,
      method: 'GET',
      status: 200,
      outcome: 'ok',
      target: '/',
      grpcStatus: undefined,
      upgrade: false,
    });
  });

  it('survives a recorder that throws, and keeps serving', async () => {
    const upstream = await startUpstream();
    cleanups.push(() => upstream.close());
    let calls = 0;
    const proxy = createProxyServer({
      config: proxyConfig(upstream.url),
      recorder: {
        record: () => {
          calls++;
          throw new Error('recorder bug');
        },
      },
      logger: silent,
    });
    const { port } = await proxy.listen();
    cleanups.push(() => proxy.destroy());
    expect((await get(`http://127.0.0.1:${port}/1`)).status).toBe(200);
    expect((await get(`http://127.0.0.1:${port}/2`)).status).toBe(200);
    await waitFor(() => calls === 2 && proxy.stats.inFlight === 0, 'two recorder calls');
  });
});

describe('upstream faults are recorded as errors, a client leaving is not', () => {
  it('connection refused: 502, connect_error, counted by code; serves again once the app is back', async () => {
    const port = await closedPort();
    const p = await startProxy(`http://127.0.0.1:${port}`);
    const res = await get(p.url);
    expect(res.status).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('connect_error');
    expect(res.text.trim()).toBe('canary-gate: upstream connect_error (ECONNREFUSED)');
    expect((await expectRecords(p, 1))[0]?.isError).toBe(true);
    expect(p.proxy.stats.outcomes.connect_error).toBe(1);
    expect(p.proxy.stats.upstreamErrors).toEqual({ ECONNREFUSED: 1 });

    const app = createServer(ok200);
    await new Promise<void>((resolve) => app.listen(port, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise((resolve) => app.close(resolve)));
    expect((await get(p.url)).status).toBe(200);
    expect((await expectRecords(p, 2)).map((r) => r.isError)).toEqual([true, false]);
  });

  it('reset before the answer: 502, reset', async () => {
    const p = await setup((req) => req.socket.destroy());
    const res = await get(p.url);
    expect(res.status).toBe(502);
    expect(res.headers['x-canary-gate-error']).toBe('reset');
    expect((await expectRecords(p, 1))[0]?.isError).toBe(true);
    expect(p.proxy.stats.outcomes.reset).toBe(1);
    expect(Object.values(p.proxy.stats.upstreamErrors)).toEqual([1]);
    await expectServesAgain(p, p.upstream, 1);
  });

  it('no headers within headersTimeout: 504, timeout', async () => {
    const p = await setup(() => undefined, { headersTimeout: 200 });
    const res = await get(p.url);
    expect(res.status).toBe(504);
    expect(res.headers['x-canary-gate-error']).toBe('timeout');
    expect((await expectRecords(p, 1))[0]?.isError).toBe(true);
    expect(p.proxy.stats.outcomes.timeout).toBe(1);
    expect(p.proxy.stats.upstreamErrors).toEqual({ UND_ERR_HEADERS_TIMEOUT: 1 });
    await expectServesAgain(p, p.upstream, 1);
  });

  it('body cut after the headers: the client sees an aborted response, reset recorded as an error', async () => {
    const p = await setup((_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('only part of it', () => setTimeout(() => res.socket?.destroy(), 10));
    });
    const res = await request(p.url, { dispatcher: client });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    expect((await expectRecords(p, 1))[0]?.isError).toBe(true);
    expect(p.proxy.stats.outcomes.reset).toBe(1);
    await expectServesAgain(p, p.upstream, 1);
  });

  it('client leaves mid-response: client_abort recorded, not as an error', async () => {
    const p = await setup((_req, res) => {
      res.writeHead(200);
      res.write('start');
    });
    await leaveMidResponse(p.port);
    expect(await expectRecords(p, 1)).toMatchObject([{ latencyUs: expect.any(Number), isError: false }]);
    expect(p.proxy.stats.outcomes.client_abort).toBe(1);
    expect(p.proxy.stats.upstreamErrors).toEqual({});
    await expectServesAgain(p, p.upstream, 1);
  });

  it('a request the proxy cannot forward (OPTIONS *) is a 400, not an error of the version', async () => {
    const p = await setup(ok200);
    const socket = connect(p.port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.write('OPTIONS * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect((await expectRecords(p, 1))[0]?.isError).toBe(false);
    expect(p.proxy.stats.upstreamErrors).toEqual({});
  });
});

describe('the queue before the upstream pool', () => {
  it('a client that leaves while queued is recorded as client_abort, never reaches the app, and frees its place', async () => {
    const releases: Array<() => void> = [];
    const p = await setup((req, res) => void releases.push(() => res.end(req.url)), { connections: 1 });
    const first = get(`${p.url}/first`);
    await waitFor(() => releases.length === 1, 'the first request at the app');
    const socket = connect(p.port, '127.0.0.1');
    socket.write('GET /leaves HTTP/1.1\r\nhost: a\r\n\r\n');
    await waitFor(() => p.proxy.stats.queued === 1, 'the second request to queue');
    const third = get(`${p.url}/third`);
    await waitFor(() => p.proxy.stats.queued === 2, 'the third request to queue');
    socket.destroy();
    await waitFor(() => p.records.length === 1, "the abandoned request's record");
    expect(p.records[0]?.request).toMatchObject({
      outcome: 'client_abort',
      status: 0,
      appLatencyUs: null,
      isError: false,
      target: '/leaves',
    });
    expect(p.records[0]?.request.queueWaitUs).toBeGreaterThan(0);
    expect(p.proxy.stats.queued).toBe(1);
    releases[0]!();
    expect((await first).text).toBe('/first');
    await waitFor(() => releases.length === 2, 'the third request at the app');
    releases[1]!();
    expect((await third).text).toBe('/third');
    await expectRecords(p, 3);
    expect(p.proxy.stats.outcomes).toMatchObject({ ok: 2, client_abort: 1 });
  });

  it("a queued request whose wait runs out gets 503 overloaded: the sidecar's saturation, not the version's error", async () => {
    const p = await setup(() => undefined, { connections: 1, queueTimeout: 100 });
    const held = request(p.url, { dispatcher: client }).catch(() => undefined);
    await waitFor(() => p.proxy.stats.upstreamInFlight === 1, 'the first request upstream');
    const res = await get(`${p.url}/queued`);
    expect(res.status).toBe(503);
    expect(res.headers['x-canary-gate-error']).toBe('overloaded');
    expect(res.text.trim()).toBe('canary-gate: overloaded, no upstream connection within 100 ms');
    await waitFor(() => p.records.length === 1, 'the record');
    expect(p.records[0]?.request).toMatchObject({ outcome: 'overloaded', status: 503, appLatencyUs: null, isError: false });
    expect(p.records[0]?.request.queueWaitUs).toBeGreaterThanOrEqual(100_000);
    expect(p.proxy.stats.rejected).toEqual({ overloaded: 1 });
    await p.proxy.destroy();
    await held;
  });
});

describe('close and destroy', () => {
  it('close() stops accepting, lets the in-flight request finish with Connection: close, then resolves', async () => {
    let release = (): void => undefined;
    let arrived = false;
    const p = await setup((_req, res) => {
      arrived = true;
      release = () => res.end('finished');
    });
    const pending = request(`${p.url}/slow`, { dispatcher: client });
    await waitFor(() => arrived, 'the request to reach the upstream');
    let closed = false;
    const closePromise = p.proxy.close();
    const closing = closePromise.then(() => (closed = true));

    const fresh = new Agent();
    cleanups.push(() => fresh.close());
    const refused = await request(p.url, { dispatcher: fresh }).then(
      () => 'accepted',
      (err: { code?: string }) => err.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    expect(closed).toBe(false);

    release();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('close');
    expect(await res.body.text()).toBe('finished');
    await closing;
    expect(p.records).toMatchObject([{ latencyUs: expect.any(Number), isError: false }]);
    expect(p.proxy.stats.inFlight).toBe(0);
    expect(p.proxy.close()).toBe(closePromise);
  });

  it('close() cuts what is still in flight after drainMs, records it once, and resolves', async () => {
    const p = await setup(() => undefined);
    const pending = request(p.url, { dispatcher: client }).then(
      (res) => res.statusCode,
      (err: { code?: string }) => err.code ?? 'error',
    );
    await waitFor(() => p.proxy.stats.inFlight === 1, 'the request in flight');
    await p.proxy.close(50);
    expect(await pending).not.toBe(200);
    expect(await expectRecords(p, 1)).toMatchObject([{ latencyUs: expect.any(Number), isError: false }]);
    expect(p.proxy.stats.outcomes.client_abort).toBe(1);
  });

  it('destroy() cuts everything at once, also while close() is draining', async () => {
    const p = await setup(() => undefined);
    const pending = request(p.url, { dispatcher: client }).then(
      () => 'answered',
      () => 'cut',
    );
    await waitFor(() => p.proxy.stats.inFlight === 1, 'the request in flight');
    const closing = p.proxy.close(60_000);
    await p.proxy.destroy();
    await closing;
    expect(await pending).toBe('cut');
    await expectRecords(p, 1);
  });
});
