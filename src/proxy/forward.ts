/**
 * Forwards one HTTP request to an upstream with an undici Pool and streams the response back: hop-by-hop headers
 * stripped both ways (RFC 9110 section 7.6.1), Host kept, X-Forwarded-For appended, X-Forwarded-Proto set when absent.
 * Never throws and never leaves an 'error' event unhandled: every failure becomes a {@link ForwardResult}.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError, type RequestOutcome } from './outcome.ts';

export interface ForwardResult {
  /** Status sent to the client (the upstream's, or 502/504 from the proxy); 0 when nothing was sent. */
  readonly status: number;
  /** `ok` here means "the upstream answered"; the caller applies the status classification. */
  readonly outcome: RequestOutcome;
  /** The upstream error code, when there was one. */
  readonly errorCode?: string;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Copies headers without hop-by-hop ones and without those the Connection header names. */
export function endToEndHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const named = headers.connection;
  const extra = typeof named === 'string' ? named.toLowerCase().split(',').map((s) => s.trim()) : [];
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || extra.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface ForwardOptions {
  /** X-Forwarded-Proto when the request has none. Default `http`. */
  readonly forwardedProto?: string;
}

export async function forwardRequest(pool: Dispatcher, req: IncomingMessage, res: ServerResponse, options: ForwardOptions = {}): Promise<ForwardResult> {
  const abort = new AbortController();
  let clientGone = false;
  const onClose = (): void => {
    if (!res.writableFinished) {
      clientGone = true;
      abort.abort();
    }
  };
  res.once('close', onClose);

  const headers = endToEndHeaders(req.headers);
  const remote = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${remote}` : remote;
  if (req.headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = options.forwardedProto ?? 'http';
  const method = req.method ?? 'GET';
  const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;

  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await pool.request({
      method: method as Dispatcher.HttpMethod,
      path: req.url ?? '/',
      headers,
      body: hasBody ? req : null,
      signal: abort.signal,
    });
  } catch (err) {
    res.off('close', onClose);
    if (clientGone) return { status: 0, outcome: 'client_abort' };
    const failure = classifyUpstreamError(err);
    if (!res.headersSent) {
      res.writeHead(failure.status, { 'content-type': 'text/plain; charset=utf-8', 'x-canary-gate-error': failure.outcome, connection: 'close' });
      res.end(`canary-gate: upstream ${failure.outcome} (${failure.code})\n`);
    } else {
      res.destroy();
    }
    req.resume();
    return { status: failure.status, outcome: failure.outcome, errorCode: failure.code };
  }

  // Which side broke first: a failing upstream body makes pipeline() destroy `res`, which also fires 'close'.
  let upstreamBrokeFirst = false;
  upstream.body.once('error', () => {
    if (!clientGone) upstreamBrokeFirst = true;
  });
  try {
    res.writeHead(upstream.statusCode, endToEndHeaders(upstream.headers));
    await pipeline(upstream.body, res);
    return { status: upstream.statusCode, outcome: 'ok' };
  } catch (err) {
    upstream.body.destroy();
    if (clientGone && !upstreamBrokeFirst) return { status: upstream.statusCode, outcome: 'client_abort' };
    res.destroy();
    const failure = classifyUpstreamError(err);
    return { status: upstream.statusCode, outcome: failure.outcome === 'timeout' ? 'timeout' : 'reset', errorCode: failure.code };
  } finally {
    res.off('close', onClose);
  }
}
