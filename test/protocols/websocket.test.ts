/**
 * WebSockets through the proxy: Node's own WebSocket client, a WebSocket echo app, the proxy between them on
 * HTTP/1.1. The upgrade is tunnelled (the handshake forwarded with the proxy's headers, then bytes both ways) and
 * recorded once, as the handshake: its status and the app's time to answer it, never the connection's lifetime.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest } from '../../src/proxy/proxy-server.ts';
import { silent } from '../helpers/redis.ts';
import { closedPort } from '../helpers/upstream.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';
import { startWsEchoApp } from './ws-echo.ts';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

async function startProxy(appUrl: string, overrides: Partial<Config['proxy']> = {}) {
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(appUrl, overrides),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { proxy, records, ws: `ws://127.0.0.1:${port}` };
}

/** Opens a WebSocket; resolves once open, or with the error event's reason when the handshake fails. */
function open(url: string): Promise<{ socket: WebSocket; opened: boolean }> {
  const socket = new WebSocket(url);
  cleanups.push(() => socket.close());
  return new Promise((resolve) => {
    socket.addEventListener('open', () => resolve({ socket, opened: true }), { once: true });
    socket.addEventListener('error', () => resolve({ socket, opened: false }), { once: true });
  });
}

/** Sends `text` on a raw connection to 127.0.0.1:`port` and resolves with everything read until the first answer's end. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (/\r\n\r\n[\s\S]*plain/.test(got)) socket.end();
    });
    socket.on('close', () => resolve(got));
    socket.on('error', () => undefined);
    socket.write(text);
  });
}

const nextMessage = (socket: WebSocket): Promise<string> =>
  new Promise((resolve) => socket.addEventListener('message', (e) => resolve(String(e.data)), { once: true }));

describe('WebSockets through the proxy', () => {
  it('echoes messages both ways and records the session once, as the 101 handshake, before the connection ends', async () => {
    const app = await startWsEchoApp();
    cleanups.push(() => app.close());
    const { records, ws } = await startProxy(app.url);

    const { socket, opened } = await open(`${ws}/chat?room=1`);
    expect(opened).toBe(true);
    const openedAt = performance.now();
    const heard: string[] = [];
    for (const text of ['hello', 'x'.repeat(5000), 'bye']) {
      const answer = nextMessage(socket);
      socket.send(text);
      heard.push(await answer);
    }
    expect(heard).toEqual(['hello', 'x'.repeat(5000), 'bye']);

    // Recorded while the connection is still open: the session's lifetime is not a request's latency.
    await waitFor(() => records.length === 1, 'the handshake record');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(socket.readyState).toBe(WebSocket.OPEN);
    const openMs = performance.now() - openedAt;
    const [r] = records;
    expect([r!.upgrade, r!.status, r!.outcome, r!.isError, r!.method, r!.target]).toEqual([true, 101, 'ok', false, 'GET', '/chat?room=1']);
    expect(r!.appLatencyUs).toBeGreaterThan(0);
    expect(r!.totalLatencyUs).toBeLessThan(openMs * 1000);

    const closed = new Promise<number>((resolve) => socket.addEventListener('close', (e) => resolve(e.code), { once: true }));
    socket.close(1000);
    expect(await closed).toBe(1000);
    expect(records).toHaveLength(1);

    // The app saw the handshake with the proxy's forwarding headers, and the upgrade itself.
    const seen = app.handshakes[0]!.headers;
    expect([seen.upgrade, seen.connection, seen['x-forwarded-for'], seen['x-forwarded-proto']]).toEqual([
      'websocket',
      'Upgrade',
      '127.0.0.1',
      'http',
    ]);
  });

  it("relays an app's refusal of the handshake (403) and records its status", async () => {
    const app = await startWsEchoApp();
    cleanups.push(() => app.close());
    const { records, ws } = await startProxy(app.url, { errorStatuses: ['5xx', '403'] });
    const { opened } = await open(`${ws}/forbidden`);
    expect(opened).toBe(false);
    await waitFor(() => records.length === 1, 'the refusal record');
    expect([records[0]!.upgrade, records[0]!.status, records[0]!.outcome, records[0]!.isError]).toEqual([true, 403, 'status_error', true]);
  });

  it('answers 502 when the app is down, recorded as a connect error of the version', async () => {
    const { proxy, records, ws } = await startProxy(`http://127.0.0.1:${await closedPort()}`);
    const { opened } = await open(`${ws}/chat`);
    expect(opened).toBe(false);
    await waitFor(() => records.length === 1, 'the failure record');
    expect([records[0]!.status, records[0]!.outcome, records[0]!.isError]).toEqual([502, 'connect_error', true]);
    expect(proxy.stats.upstreamErrors.ECONNREFUSED).toBe(1);
  });

  it('cuts open sessions at shutdown instead of waiting for them', async () => {
    const app = await startWsEchoApp();
    cleanups.push(() => app.close());
    const { proxy, ws } = await startProxy(app.url);
    const { socket, opened } = await open(`${ws}/chat`);
    expect(opened).toBe(true);
    const closed = new Promise<void>((resolve) => socket.addEventListener('close', () => resolve(), { once: true }));
    await proxy.close(60_000);
    await closed;
    expect(socket.readyState).toBe(WebSocket.CLOSED);
  });

  it('forwards other Upgrade requests (h2c from an HTTP/1.1 client) as plain requests, body included, without the Upgrade', async () => {
    const app = await startWsEchoApp((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => res.end(`plain ${req.method} ${body} upgrade=${req.headers.upgrade ?? 'none'}`));
    });
    cleanups.push(() => app.close());
    const { records, ws } = await startProxy(app.url);
    const raw = await rawRequest(
      Number(new URL(ws).port),
      'POST /form HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\nupgrade: h2c\r\ncontent-length: 3\r\n\r\na=1',
    );
    expect(raw).toContain('plain POST a=1 upgrade=none');
    expect(app.handshakes).toHaveLength(0);
    await waitFor(() => records.some((r) => r.target === '/form' && !r.upgrade && r.status === 200), 'a plain record');
  });
});
