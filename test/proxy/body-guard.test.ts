/**
 * The slow-upload guard: a request body that sends nothing for `clientBodyTimeout`, or comes slower than
 * `clientBodyMinRate`, gets 408 and its connection is closed, the upstream request is aborted and its connection
 * freed; counted as rejected (`body_timeout`), never as the version's error. Time the app itself holds the body back
 * (it reads slowly) is the app's: it neither trips the guard nor leaves the judged latency.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest, type ProxyServer } from '../../src/proxy/proxy-server.ts';
import { loopbackProxyConfig } from '../helpers/proxy-config.ts';
import { silent } from '../helpers/redis.ts';
import { trickleUpload } from '../helpers/slow-clients.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});
const client = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => client.close());

interface Setup {
  readonly port: number;
  readonly url: string;
  readonly proxy: ProxyServer;
  readonly records: ProxiedRequest[];
  readonly app: Upstream;
  /** Requests the app saw, and whether each one's body arrived whole (false: aborted by the proxy). */
  readonly seen: Array<{ url: string; complete: boolean | null }>;
}

/** The app reads the whole body and answers `ok` (after `readAfterMs` when given: it holds the body back that long). */
async function setup(overrides: Partial<Config['proxy']>, readAfterMs = 0): Promise<Setup> {
  const seen: Setup['seen'] = [];
  const app = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    const entry = { url: req.url ?? '', complete: null as boolean | null };
    seen.push(entry);
    req.once('close', () => (entry.complete = req.complete));
    setTimeout(() => {
      req.resume();
      req.once('end', () => res.end('ok'));
    }, readAfterMs);
  });
  cleanups.push(() => app.close());
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(app.url, { connections: 8, clientBodyMinRate: 0, errorStatuses: ['5xx', '4xx'], ...overrides }),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { port, url: `http://127.0.0.1:${port}`, proxy, records, app, seen };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The record of a request cut by the guard: 408, not an error of the version (4xx are errors here), not judged. */
const CUT = { status: 408, outcome: 'body_timeout', isError: false, appLatencyUs: null };

describe('the slow-upload guard', () => {
  it('a body that stops sending for clientBodyTimeout gets 408, its connection closed; the upstream request is aborted', async () => {
    const p = await setup({ clientBodyTimeout: 300 });
    // 4 bytes announced, 3 sent (one every 50 ms), then nothing.
    const answer = await trickleUpload(p.port, '/stalled', 4, 50, new Promise(() => undefined));
    expect(answer.status).toBe(408);
    expect(answer.headers['x-canary-gate-error']).toBe('body_timeout');
    expect(answer.closedByServer).toBe(true);
    await waitFor(() => p.records.length === 1 && p.seen[0]?.complete !== null, 'the record and the upstream request to end');
    expect(p.records[0]).toMatchObject(CUT);
    expect(p.seen).toEqual([{ url: '/stalled', complete: false }]);
    expect(p.proxy.stats.rejected).toEqual({ body_timeout: 1 });
    expect(p.proxy.stats.upstreamErrors).toEqual({});
  });

  it('a body that keeps sending, but slower than clientBodyMinRate, gets 408 too', async () => {
    // A byte every 50 ms (20 B/s) never stays idle for 300 ms, but falls below 100 B/s once the 300 ms grace is spent.
    const p = await setup({ clientBodyTimeout: 300, clientBodyMinRate: 100 });
    const answer = await trickleUpload(p.port, '/trickle', 1000, 50);
    expect(answer.status).toBe(408);
    expect(answer.closedByServer).toBe(true);
    await waitFor(() => p.records.length === 1, 'the record');
    expect(p.records[0]).toMatchObject(CUT);
    expect(p.proxy.stats.rejected.body_timeout).toBe(1);
  });

  it('trickling clients that hold the whole pool are cut, and the queued requests are served instead of turned away', async () => {
    // The attack, scaled down: more trickling sockets than connections, a byte every 200 ms, forever.
    const p = await setup({ connections: 2, queueTimeout: 5000, clientBodyTimeout: 500, clientBodyMinRate: 50 });
    const attackers = Array.from({ length: 3 }, () => trickleUpload(p.port, '/hold', 10_000, 200));
    await waitFor(() => p.proxy.stats.upstreamInFlight === 2 && p.proxy.stats.queued === 1, 'the pool to be held');
    const healthy = Array.from({ length: 4 }, () =>
      request(`${p.url}/healthy`, { dispatcher: client }).then(async (res) => (await res.body.text(), res.statusCode)),
    );
    expect(await Promise.all(healthy)).toEqual([200, 200, 200, 200]);
    expect((await Promise.all(attackers)).map((a) => a.status)).toEqual([408, 408, 408]);
    await waitFor(() => p.records.length === 7, 'seven records');
    expect(p.proxy.stats.outcomes).toMatchObject({ ok: 4, body_timeout: 3, overloaded: 0 });
  });

  it('an app that answers before the body has arrived: the client connection closes after the answer, and the upstream connection is free again', async () => {
    const p = await setup({ connections: 1, queueTimeout: 1000 });
    p.app.handle((req, res) => {
      const entry = { url: req.url ?? '', complete: null as boolean | null };
      p.seen.push(entry);
      // Answered requests get no 'close' from a connection cut under them: watch the connection instead.
      req.socket.once('close', () => (entry.complete = req.complete));
      if (req.url === '/early')
        res.writeHead(401).end('no'); // without reading the body
      else res.end('ok');
    });
    const early = await trickleUpload(p.port, '/early', 1000, 50);
    expect(early.status).toBe(401);
    expect(early.headers.connection).toBe('close');
    expect(early.closedByServer).toBe(true);
    const next = await request(`${p.url}/next`, { dispatcher: client });
    expect(next.statusCode).toBe(200);
    expect(await next.body.text()).toBe('ok');
    await waitFor(() => p.seen.length === 2 && p.seen[0]?.complete !== null, "both requests at the app, the first one's connection closed");
    expect(p.seen[0]).toEqual({ url: '/early', complete: false });
  });

  it("the app holding the body back (it reads late) is the app's time: no 408, and it is judged", async () => {
    const p = await setup({ clientBodyTimeout: 200 }, 800);
    const body = Buffer.alloc(32 * 1024 * 1024, 1); // more than the socket buffers between proxy and app hold
    const res = await request(`${p.url}/late-reader`, { method: 'POST', body, dispatcher: client });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
    await waitFor(() => p.records.length === 1, 'the record');
    const [record] = p.records;
    expect(record?.outcome).toBe('ok');
    // The app did not read for 800 ms: the judged latency holds that wait (well over clientBodyTimeout, which never fired).
    expect(record?.appLatencyUs).toBeGreaterThan(800_000);
    expect(p.proxy.stats.rejected).toEqual({});
  });
});
