/**
 * Tunnels an HTTP/1.1 Upgrade request (a WebSocket handshake) to the upstream on a connection of its own, outside the
 * pool: the handshake is forwarded with the proxy's X-Forwarded-* headers, the upstream's answer is relayed as it
 * came (101 and its headers, or a refusal such as 403 or 426 with its body), and after a 101 the bytes flow both ways
 * untouched until either side closes.
 *
 * The result describes the handshake only (its status, and the app's time to answer it): the connection's lifetime is
 * not a request's latency. Node's http client parses the upstream's answer (undici's `upgrade()` turns every non-101
 * answer into an error, which would lose the app's refusal).
 *
 * Never throws; never leaves an 'error' event unhandled.
 */
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { answerRaw, endToEndHeaders, type ForwardOptions, type ForwardResult, setForwardedHeaders } from './forward.ts';
import { classifyUpstreamError } from './outcome.ts';

const defaultNow = performance.now.bind(performance);

/** The head of a 101, as raw text from Node's parsed status and raw headers (names' case kept, repeats kept). */
function switchingHead(res: IncomingMessage): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
  for (let i = 0; i < res.rawHeaders.length; i += 2) head += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * The head of a refused upgrade: end-to-end headers only, no chunked framing (Node's client has already decoded it),
 * and `connection: close`, so that the body ends with the connection.
 */
function refusalHead(res: IncomingMessage): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
  const headers = endToEndHeaders(res.headers);
  for (const name in headers) {
    const value = headers[name]!;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return `${head}connection: close\r\n\r\n`;
}

/**
 * Forwards the upgrade request `req` (whose connection is `socket`, with `head` already read past the request head)
 * to `upstream` and, on a 101, joins the two connections.
 * - 101: both connections joined; result `ok`, status 101, app latency = the time to the upstream's 101
 * - another answer: relayed with its body, then the client connection closed; the status is classified as usual
 * - upstream unreachable, reset or silent past `headersTimeoutMs`: 502/504 written raw, outcome connect_error/reset/timeout
 * - the client left first: `client_abort`
 * @param onJoined called with the two connections once joined, so that the caller can cut them at shutdown
 */
export function tunnelUpgrade(
  upstream: URL,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: ForwardOptions & { readonly headersTimeoutMs: number; readonly onJoined: (client: Duplex, app: Duplex) => void },
): Promise<ForwardResult> {
  const now = options.now ?? defaultNow;
  const dispatchedMs = now();
  return new Promise<ForwardResult>((resolve) => {
    let settled = false;
    const settle = (r: ForwardResult): void => {
      if (settled) return;
      settled = true;
      socket.off('close', onClientClose);
      resolve(r);
    };
    const headers: Record<string, string | string[]> = endToEndHeaders(req.headers);
    // The upgrade itself is hop-by-hop, and it is what is asked for here.
    headers.connection = 'Upgrade';
    if (req.headers.upgrade !== undefined) headers.upgrade = req.headers.upgrade;
    setForwardedHeaders(headers, req.socket.remoteAddress, options);

    const out = httpRequest({
      protocol: upstream.protocol,
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      agent: false,
      timeout: options.headersTimeoutMs,
    });
    const latencyUs = (): number => Math.max(0, now() - dispatchedMs) * 1000;
    const onClientClose = (): void => {
      out.destroy();
      settle({ status: 0, outcome: 'client_abort', appLatencyUs: null });
    };
    socket.once('close', onClientClose);
    socket.on('error', () => socket.destroy());
    out.once('timeout', () => out.destroy(Object.assign(new Error('upgrade answer timed out'), { code: 'UND_ERR_HEADERS_TIMEOUT' })));
    out.on('error', (err) => {
      if (settled) return;
      const failure = classifyUpstreamError(err);
      answerRaw(socket, failure.status, failure.outcome, `canary-gate: upstream ${failure.outcome} (${failure.code})\n`);
      settle({ status: failure.status, outcome: failure.outcome, errorCode: failure.code, appLatencyUs: latencyUs() });
    });
    out.once('upgrade', (res: IncomingMessage, app: Duplex, appHead: Buffer) => {
      const appLatencyUs = latencyUs();
      out.setTimeout(0);
      app.on('error', () => socket.destroy());
      socket.on('error', () => app.destroy());
      if (socket.destroyed) {
        app.destroy();
        settle({ status: 0, outcome: 'client_abort', appLatencyUs });
        return;
      }
      socket.write(switchingHead(res));
      if (appHead.length > 0) socket.write(appHead);
      if (head.length > 0) app.write(head);
      app.pipe(socket);
      socket.pipe(app);
      app.once('close', () => socket.destroy());
      socket.once('close', () => app.destroy());
      options.onJoined(socket, app);
      settle({ status: res.statusCode ?? 101, outcome: 'ok', appLatencyUs });
    });
    out.once('response', (res: IncomingMessage) => {
      // A refusal (or an app that ignores Upgrade): relay it and close, the connection cannot be reused.
      out.setTimeout(0);
      socket.write(refusalHead(res));
      res.pipe(socket);
      res.once('end', () => {
        settle({ status: res.statusCode ?? 0, outcome: 'ok', appLatencyUs: latencyUs() });
      });
      res.on('error', (err) => {
        socket.destroy();
        const failure = classifyUpstreamError(err);
        settle({ status: res.statusCode ?? 0, outcome: 'reset', errorCode: failure.code, appLatencyUs: latencyUs() });
      });
    });
    out.end();
  });
}
