/**
 * Plain HTTP/2 through an h2c proxy, with Node's http2 client (prior knowledge): to an h2c app with response trailers,
 * and to an HTTP/1.1 app (the listener's protocol and the upstream's are chosen apart); the slow-upload guard cuts one
 * stream of a session and spares its neighbours.
 */
import { connect, createServer as createH2Server, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest } from '../../src/proxy/proxy-server.ts';
import { silent } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

async function startProxy(appUrl: string, overrides: Partial<Config['proxy']>, sessionIdleMs?: number) {
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(appUrl, overrides),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
    sessionIdleMs,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { records, url: `http://127.0.0.1:${port}` };
}

function session(url: string): ClientHttp2Session {
  const s = connect(url);
  s.on('error', () => undefined);
  cleanups.push(() => s.destroy());
  return s;
}

/** One HTTP/2 request; resolves with the response headers, body and trailers. */
function fetchH2(
  s: ClientHttp2Session,
  path: string,
  body?: string,
): Promise<{ headers: IncomingHttpHeaders; body: string; trailers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST' }, { endStream: body === undefined });
    if (body !== undefined) stream.end(body);
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    let text = '';
    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (text += d));
    stream.on('end', () => resolve({ headers, body: text, trailers }));
    stream.on('error', reject);
  });
}

describe('HTTP/2 through an h2c proxy', () => {
  it("forwards an h2c app's response trailers, and a request body, recording one request per stream", async () => {
    const app = createH2Server((req, res) => {
      let received = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (received += d));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(`got ${received.length} bytes at ${req.url} for ${req.headers[':authority']}`);
        res.addTrailers({ 'x-checksum': 'abc123' });
        res.end();
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise((resolve) => app.close(resolve)));
    const { records, url } = await startProxy(`http://127.0.0.1:${(app.address() as AddressInfo).port}`, {
      protocol: 'h2c',
      upstreamProtocol: 'h2c',
    });
    const s = session(url);
    const answer = await fetchH2(s, '/sum?x=1', 'y'.repeat(100_000));
    expect([answer.headers[':status'], answer.body, answer.trailers['x-checksum']]).toEqual([
      200,
      `got 100000 bytes at /sum?x=1 for ${url.replace('http://', '')}`,
      'abc123',
    ]);
    await waitFor(() => records.length === 1, 'one record');
    expect([records[0]!.method, records[0]!.target, records[0]!.status, records[0]!.outcome, records[0]!.grpcStatus]).toEqual([
      'POST',
      '/sum?x=1',
      200,
      'ok',
      undefined,
    ]);
  });

  it('forwards HTTP/2 clients to an HTTP/1.1 app, statuses classified as usual', async () => {
    const app = await startUpstream((req, res) => {
      res.writeHead(req.url === '/broken' ? 503 : 200, {
        'content-type': 'text/plain',
        'x-seen-proto': String(req.headers['x-forwarded-proto']),
      });
      res.end(`h1 ${req.method} ${req.url}`);
    });
    cleanups.push(() => app.close());
    const { records, url } = await startProxy(app.url, { protocol: 'h2c', upstreamProtocol: 'http1' });
    const s = session(url);
    const ok = await fetchH2(s, '/hello');
    const broken = await fetchH2(s, '/broken');
    expect([ok.headers[':status'], ok.body, ok.headers['x-seen-proto']]).toEqual([200, 'h1 GET /hello', 'http']);
    expect(broken.headers[':status']).toBe(503);
    await waitFor(() => records.length === 2, 'two records');
    expect(records.map((r) => [r.target, r.status, r.outcome, r.isError])).toEqual([
      ['/hello', 200, 'ok', false],
      ['/broken', 503, 'status_error', true],
    ]);
  });

  it('closes a client session idle past sessionIdleMs, but not one whose stream is only quiet', async () => {
    const app = await startUpstream((req, res) => {
      // /quiet: nothing for 400 ms, twice the idle time, as a quiet gRPC stream would be.
      setTimeout(() => res.end('late'), req.url === '/quiet' ? 400 : 0);
    });
    cleanups.push(() => app.close());
    const { url } = await startProxy(app.url, { protocol: 'h2c', upstreamProtocol: 'http1' }, 200);
    const busy = session(url);
    const quiet = fetchH2(busy, '/quiet');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Past the idle time, but a stream is open: the session still takes new streams.
    expect((await fetchH2(busy, '/now')).body).toBe('late');
    expect((await quiet).body).toBe('late');
    const idle = session(url);
    const closed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    await fetchH2(idle, '/now');
    await closed;
    expect(idle.closed || idle.destroyed).toBe(true);
  });

  it('answers 408 to a stream whose upload trickles, while a fast upload on the same session goes on', async () => {
    // The app reads every body to its end and says how much it got.
    const app = await startUpstream((req, res) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      req.on('end', () => res.end(`got ${bytes}`));
    });
    cleanups.push(() => app.close());
    const { records, url } = await startProxy(app.url, {
      protocol: 'h2c',
      upstreamProtocol: 'http1',
      clientBodyTimeout: 300,
      clientBodyMinRate: 1000,
    });
    const s = session(url);
    /** A POST whose body is `chunks` writes of `size` bytes, `everyMs` apart; resolves with the status and body. */
    const upload = (path: string, size: number, chunks: number, everyMs: number) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = s.request({ ':path': path, ':method': 'POST' });
        let status = 0;
        let text = '';
        let sent = 0;
        const timer = setInterval(() => {
          if (stream.destroyed || stream.writableEnded) return clearInterval(timer);
          stream.write(Buffer.alloc(size, 0x61));
          if (++sent === chunks) {
            clearInterval(timer);
            stream.end();
          }
        }, everyMs);
        cleanups.push(() => clearInterval(timer));
        stream.on('response', (h) => {
          status = Number(h[':status']);
        });
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => {
          text += d;
        });
        stream.on('close', () => {
          clearInterval(timer);
          resolve({ status, body: text });
        });
        stream.on('error', reject);
      });
    // 10 bytes a second against a floor of 1000 (after 300 ms of grace), beside 20 KB a second for 1.5 s.
    const slow = upload('/slow', 1, 30, 100);
    const fast = upload('/fast', 1000, 30, 50);
    const [slowAnswer, fastAnswer] = await Promise.all([slow, fast]);
    expect(slowAnswer.status).toBe(408);
    expect(fastAnswer).toEqual({ status: 200, body: 'got 30000' });
    // The session was not harmed: it takes another stream.
    expect((await fetchH2(s, '/after')).body).toBe('got 0');
    await waitFor(() => records.length === 3, 'three records');
    expect(records.map((r) => [r.target, r.status, r.outcome, r.isError])).toEqual([
      ['/slow', 408, 'body_timeout', false],
      ['/fast', 200, 'ok', false],
      ['/after', 200, 'ok', false],
    ]);
  });

  it("leaves CONNECT to Node's HTTP/2 server (405), never forwarded nor recorded", async () => {
    const app = await startUpstream();
    cleanups.push(() => app.close());
    const { records, url } = await startProxy(app.url, { protocol: 'h2c', upstreamProtocol: 'http1' });
    const s = session(url);
    const status = await new Promise<number>((resolve, reject) => {
      const stream = s.request({ ':method': 'CONNECT', ':authority': 'elsewhere.example:443' });
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', reject);
    });
    expect(status).toBe(405);
    await fetchH2(s, '/after');
    await waitFor(() => records.length === 1, 'one record');
    expect(records.map((r) => r.target)).toEqual(['/after']);
  });
});
