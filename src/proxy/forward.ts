/**
 * Forwards one HTTP request to an upstream with an undici dispatcher (a Pool) and streams the response back:
 * hop-by-hop headers stripped both ways (RFC 9110 section 7.6.1), Host kept, X-Forwarded-For appended,
 * X-Forwarded-Proto set when absent, bodies streamed with backpressure.
 *
 * Never throws and never leaves an 'error' event unhandled: every failure becomes a {@link ForwardResult}. It knows
 * nothing about recording, so the demo's traffic router reuses it.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError, errorCodeOf, type Outcome } from './outcome.ts';

export interface ForwardResult {
  /** Status sent to the client: the upstream's, or 400/502/504 from the proxy; 0 when the client left before any. */
  readonly status: number;
  /** `ok` means the request went through; the caller applies the status classification (`status_error`). */
  readonly outcome: Outcome;
  /** The error code (`UND_ERR_*` or `E*`) when something failed, also on a 400 the proxy answered itself; absent on success and on a client abort. */
  readonly errorCode?: string;
}

export interface ForwardOptions {
  /** X-Forwarded-Proto when the request has none. Default `http`. */
  readonly forwardedProto?: string;
}

/**
 * Headers that never cross the proxy. The RFC 9110 hop-by-hop list plus `proxy-connection` (legacy) and `expect`:
 * Node's server has already answered `Expect: 100-continue` for the client, and undici refuses to send it.
 */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

/**
 * undici refuses these before anything is sent (`OPTIONS *`, a header it does not support): the request cannot be
 * forwarded, which is the client's problem (400), not the upstream's.
 */
const UNFORWARDABLE_CODES: ReadonlySet<string> = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

const NO_OPTIONS: ForwardOptions = {};

/** Copies headers without hop-by-hop ones and without those the Connection header names. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connection === undefined ? null : (Array.isArray(connection) ? connection.join(',') : connection).toLowerCase().split(',').map((s) => s.trim());
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || (named !== null && named.includes(name))) continue;
    out[name] = value;
  }
  return out;
}

/** Answers a failure the proxy detected before any header was sent, as a short text/plain body. */
function answer(res: ServerResponse, status: number, errorHeader: string, text: string, closeConnection: boolean): void {
  const headers: OutgoingHttpHeaders = { 'content-type': 'text/plain; charset=utf-8', 'x-canary-gate-error': errorHeader };
  // An unread request body would otherwise have to be drained before the connection could be reused.
  if (closeConnection) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}

/**
 * Forwards `req` to the dispatcher's origin and streams the answer into `res`.
 * - upstream failure before headers: 502 (connect failure, reset) or 504 (timeout) with `x-canary-gate-error`
 * - upstream failure after headers (cut body, body timeout): the client connection is destroyed, outcome reset/timeout
 * - the client went away first: the upstream request is aborted, outcome `client_abort`
 * @param dispatcher usually an undici Pool for the upstream origin
 */
export async function forwardRequest(dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, options: ForwardOptions = NO_OPTIONS): Promise<ForwardResult> {
  try {
    return await forward(dispatcher, req, res, options);
  } catch (err) {
    // Not expected (every known failure is handled inside): keep the promise of "never throws" anyway.
    const code = errorCodeOf(err);
    if (!res.headersSent && !res.destroyed) answer(res, 502, 'reset', `canary-gate: proxy failure (${code})\n`, true);
    else res.destroy();
    return { status: 502, outcome: 'reset', errorCode: code };
  }
}

/**
 * Streams the upstream body into the response with backpressure (Readable.pipe) and settles when the response has
 * finished; rejects with the body's error, or when the response closes before finishing (the client went away).
 * Lighter than stream.pipeline, which builds and aborts an AbortController per call (about 5 % of the proxy's CPU in
 * a profile at saturation).
 */
function relay(body: Readable, res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onFinish = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      if (res.writableFinished) return;
      cleanup();
      reject(new Error('response closed before it finished'));
    };
    const cleanup = (): void => {
      body.off('error', onError);
      res.off('error', onError);
      res.off('finish', onFinish);
      res.off('close', onClose);
      body.unpipe(res);
    };
    body.once('error', onError);
    res.once('error', onError);
    res.once('finish', onFinish);
    res.once('close', onClose);
    body.pipe(res);
  });
}

async function forward(dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, options: ForwardOptions): Promise<ForwardResult> {
  if (res.destroyed) return { status: 0, outcome: 'client_abort' };
  const abort = new AbortController();
  let clientGone = false;
  const onClose = (): void => {
    // 'close' after 'finish' is the normal end; before it, the client (or we, on a cut upstream body) ended it.
    if (!res.writableFinished) {
      clientGone = true;
      abort.abort();
    }
  };
  res.once('close', onClose);
  try {
    const reqHeaders = req.headers;
    const headers = endToEndHeaders(reqHeaders);
    const remote = req.socket.remoteAddress;
    const prior = reqHeaders['x-forwarded-for'];
    if (remote !== undefined) headers['x-forwarded-for'] = prior ? `${prior}, ${remote}` : remote;
    if (reqHeaders['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = options.forwardedProto ?? 'http';
    // HTTP/1.1 framing: a request has a body only when it says so (GET and HEAD usually do not).
    const contentLength = reqHeaders['content-length'];
    const hasBody = contentLength !== undefined ? contentLength !== '0' : reqHeaders['transfer-encoding'] !== undefined;

    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await dispatcher.request({
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: req.url ?? '/',
        headers,
        // undici destroys a failed request's body stream but detaches an IncomingMessage's socket first, so the
        // client connection survives to receive the 502.
        body: hasBody ? req : null,
        signal: abort.signal,
      });
    } catch (err) {
      if (clientGone) return { status: 0, outcome: 'client_abort' };
      const unread = hasBody && !req.complete;
      const code = errorCodeOf(err);
      if (UNFORWARDABLE_CODES.has(code)) {
        answer(res, 400, 'bad_request', `canary-gate: request cannot be forwarded (${code})\n`, unread);
        return { status: 400, outcome: 'ok', errorCode: code };
      }
      const failure = classifyUpstreamError(err);
      answer(res, failure.status, failure.outcome, `canary-gate: upstream ${failure.outcome} (${failure.code})\n`, unread);
      return { status: failure.status, outcome: failure.outcome, errorCode: failure.code };
    }

    // Which side broke first: a failing upstream body makes pipeline() destroy `res`, which also fires 'close'.
    const body = upstream.body;
    let upstreamBrokeFirst = false;
    body.once('error', () => {
      if (!clientGone) upstreamBrokeFirst = true;
    });
    try {
      res.writeHead(upstream.statusCode, endToEndHeaders(upstream.headers));
      await relay(body, res);
      return { status: upstream.statusCode, outcome: 'ok' };
    } catch (err) {
      body.destroy();
      if (clientGone && !upstreamBrokeFirst) return { status: upstream.statusCode, outcome: 'client_abort' };
      // Headers are gone: the only way left to tell the client that the body is incomplete is to cut it.
      res.destroy();
      const failure = classifyUpstreamError(err);
      return { status: upstream.statusCode, outcome: failure.outcome === 'timeout' ? 'timeout' : 'reset', errorCode: failure.code };
    }
  } finally {
    res.off('close', onClose);
  }
}
