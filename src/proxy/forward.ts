/**
 * Forwards one HTTP request to an upstream with an undici dispatcher (a Pool) and streams the response back:
 * hop-by-hop headers stripped both ways (RFC 9110 section 7.6.1) but never Host, X-Forwarded-For appended,
 * X-Forwarded-Proto set by the proxy (kept only from a trusted proxy), an absolute-form target rewritten to
 * origin-form, bodies streamed with backpressure.
 *
 * It also measures what the app took, apart from what the client made it wait (the latency the gate judges): from
 * the dispatch upstream to the end of the upstream's response, less the time spent waiting for a slow client's body
 * bytes, and only until a client that does not keep up first held the response back. See
 * {@link ForwardResult.appLatencyUs}.
 *
 * Never throws and never leaves an 'error' event unhandled: every failure becomes a {@link ForwardResult}. It knows
 * nothing about recording or queueing, so the demo's traffic router reuses it.
 */
import { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, STATUS_CODES, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError, errorCodeOf, type RequestOutcome } from './outcome.ts';
import type { ReadGuard } from './read-guard.ts';
import { UploadWatch } from './upload-watch.ts';

export interface ForwardResult {
  /** Status sent to the client: the upstream's, or 400/408/502/504 from the proxy; 0 when the client left before any. */
  readonly status: number;
  /** `ok` means the request went through; the caller applies the status classification (`status_error`). */
  readonly outcome: RequestOutcome;
  /** The error code (`UND_ERR_*`, `E*`, or the proxy's own `CG_*`) when something failed, also on a 400 the proxy answered itself; absent on success and on a client abort. */
  readonly errorCode?: string;
  /**
   * The app's time, µs: from the dispatch upstream to the end of the upstream's response (or its failure), less the
   * time the proxy waited for the client's body bytes (until the app answered); when the client did not read as fast
   * as the response came (the response buffer filled), it ends at that moment instead of the end. Null when the app
   * was not asked for a whole answer: the proxy refused the request (400), the client left before its body had
   * arrived, or its body came too slowly (408).
   */
  readonly appLatencyUs: number | null;
  /** The gRPC status of a gRPC answer (0..16, from `grpc-status`); absent for anything else. */
  readonly grpcStatus?: number;
}

export interface ForwardOptions {
  /** X-Forwarded-Proto the proxy sets. Default `http`. */
  readonly forwardedProto?: string;
  /**
   * Whether a client (its socket's remote address) may set X-Forwarded-Proto and X-Forwarded-Client-Cert itself.
   * Default: nobody.
   */
  readonly isTrustedProxy?: (address: string | undefined) => boolean;
  /** Longest time a request body may send nothing while it is read, ms: slower gets 408. 0 or absent: no guard. */
  readonly clientBodyTimeoutMs?: number;
  /** Slowest request body, bytes per second, after a grace of clientBodyTimeoutMs. 0 or absent: none. */
  readonly clientBodyMinRate?: number;
  /** Whether other requests wait for an upstream connection now: the rate check's grace then shrinks (UploadWatch). */
  readonly isContended?: () => boolean;
  /** The slow-read guard, told when a client holds its response back and when it reads again. Default: none. */
  readonly readGuard?: ReadGuard;
  /** High-resolution clock, ms. Default `performance.now`. */
  readonly now?: () => number;
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
export const UNFORWARDABLE_CODES: ReadonlySet<string> = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/** The proxy's own codes for requests it refuses. */
export const ForwardCodes = {
  /** Two Host headers: which one the app would read is not defined (RFC 9112 section 3.2), so neither is forwarded. */
  HOST_DUPLICATE: 'CG_HOST_DUPLICATE',
  /** An absolute-form target that is not an http(s) URL with a host. */
  TARGET_INVALID: 'CG_TARGET_INVALID',
} as const;

const NO_OPTIONS: ForwardOptions = {};
const defaultNow = performance.now.bind(performance);
const nobody = (): boolean => false;

/**
 * Sets the forwarding headers of a request about to go upstream (every protocol: HTTP/1.1, HTTP/2, the WebSocket
 * tunnel), after the Connection header was applied, so that a client cannot strip them by naming them there:
 * - X-Forwarded-For: the client's address appended;
 * - X-Forwarded-Proto: `forwardedProto`, unless a trusted proxy (`isTrustedProxy`) sent one;
 * - X-Forwarded-Client-Cert: dropped unless a trusted proxy sent it, as Envoy's default (SANITIZE) does, so that a
 *   client cannot pass an app that trusts the header an identity it never proved.
 * @param remote the client socket's address (undefined once the socket is gone)
 */
export function setForwardedHeaders(
  headers: Record<string, string | string[]>,
  remote: string | undefined,
  options: Pick<ForwardOptions, 'forwardedProto' | 'isTrustedProxy'>,
): void {
  const prior = headers['x-forwarded-for'];
  if (remote !== undefined) headers['x-forwarded-for'] = prior ? `${prior}, ${remote}` : remote;
  const trusted = (options.isTrustedProxy ?? nobody)(remote);
  if (!trusted || headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = options.forwardedProto ?? 'http';
  if (!trusted) delete headers['x-forwarded-client-cert'];
}

/**
 * Copies headers without hop-by-hop ones and without those the Connection header names, except Host: a client
 * naming it in Connection would otherwise have undici send the upstream's own address instead.
 */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const connection = headers.connection;
  const named =
    connection === undefined
      ? null
      : (Array.isArray(connection) ? connection.join(',') : connection)
          .toLowerCase()
          .split(',')
          .map((s) => s.trim());
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || (named !== null && name !== 'host' && named.includes(name))) continue;
    out[name] = value;
  }
  return out;
}

/** How many Host fields the request carried (Node keeps only the first in `req.headers`). */
export function hostFieldCount(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/**
 * An absolute-form target (`http://shop.example/cart?x=1`, RFC 9112 section 3.2.2) as origin-form and the host it
 * names, which replaces the Host header; null when it is not an http(s) URL with a host.
 */
export function originFormOf(target: string): { readonly path: string; readonly host: string } | null {
  const url = URL.parse(target);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '') return null;
  return { path: `${url.pathname}${url.search}`, host: url.host };
}

/** Answers a failure the proxy detected before any header was sent, as a short text/plain body. */
export function answer(res: ServerResponse, status: number, errorHeader: string, text: string, closeConnection: boolean): void {
  const headers: OutgoingHttpHeaders = { 'content-type': 'text/plain; charset=utf-8', 'x-canary-gate-error': errorHeader };
  // An unread request body would otherwise have to be drained before the connection could be reused.
  if (closeConnection) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(text);
}

/**
 * Answers on a raw connection (an upgrade request, which has no ServerResponse) and closes it: a short text/plain
 * body with `x-canary-gate-error`.
 */
export function answerRaw(socket: Duplex, status: number, errorHeader: string, text: string): void {
  if (socket.destroyed || !socket.writable) return;
  const body = Buffer.from(text);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\nx-canary-gate-error: ${errorHeader}\r\n` +
      `connection: close\r\ncontent-length: ${body.length}\r\n\r\n${text}`,
  );
}

/**
 * Forwards `req` to the dispatcher's origin and streams the answer into `res`.
 * - two Host headers, or an absolute-form target that is not an http(s) URL: 400 `bad_request`, never forwarded
 * - an absolute-form target is forwarded in origin-form (`req.url` is rewritten, so later readers see the path)
 * - upstream failure before headers: 502 (connect failure, reset) or 504 (timeout) with `x-canary-gate-error`
 * - upstream failure after headers (cut body, body timeout): the client connection is destroyed, outcome reset/timeout
 * - the request body too slow (`clientBodyTimeoutMs`, `clientBodyMinRate`): 408 `body_timeout` and the connection
 *   closed, or cut when the response had started; the upstream request is aborted
 * - the client went away first: the upstream request is aborted, outcome `client_abort`
 * @param dispatcher usually an undici Pool for the upstream origin
 */
export async function forwardRequest(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  options: ForwardOptions = NO_OPTIONS,
): Promise<ForwardResult> {
  try {
    return await forward(dispatcher, req, res, options);
  } catch (err) {
    // Not expected (every known failure is handled inside): keep the promise of "never throws" anyway.
    const code = errorCodeOf(err);
    if (!res.headersSent && !res.destroyed) answer(res, 502, 'reset', `canary-gate: proxy failure (${code})\n`, true);
    else res.destroy();
    return { status: 502, outcome: 'reset', errorCode: code, appLatencyUs: null };
  }
}

/** When the upstream's body ended, and when a client first held the response back (-1: not yet). */
export interface Download {
  heldMs: number;
  endMs: number;
}

/** What a relay needs of a response: an HTTP/1.1 ServerResponse or an HTTP/2 compatibility-API response. */
export interface RelayTarget {
  readonly writableFinished: boolean;
  write(chunk: Buffer): boolean;
  end(): unknown;
  addTrailers(headers: Record<string, string>): void;
  destroy(): unknown;
  on(event: 'drain' | 'error' | 'finish' | 'close', listener: (err: Error) => void): unknown;
  once(event: 'drain' | 'error' | 'finish' | 'close', listener: (err: Error) => void): unknown;
  off(event: 'drain' | 'error' | 'finish' | 'close', listener: (err: Error) => void): unknown;
}

/**
 * Streams the upstream body into the response with backpressure (what Readable.pipe does: pause the body while the
 * response is full, resume it on 'drain'), and notes when a client first held it back and when the upstream body
 * ended. Settles when the response has finished; rejects with the body's error, or when the response closes before
 * finishing (the client went away). Lighter than stream.pipeline, which builds and aborts an AbortController per
 * call (about 5 % of the proxy's CPU in a profile at saturation).
 * @param trailers HTTP/2 only: called at the body's end, its fields (pseudo-headers dropped) are sent as the
 *   response's trailers when there are any. Absent (HTTP/1.1): no trailers, and no cost beyond one check.
 */
export function relay(
  body: Readable,
  res: RelayTarget,
  now: () => number,
  download: Download,
  guard: ReadGuard | undefined,
  trailers?: () => Record<string, string>,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let held = false;
    const onData = (chunk: Buffer): void => {
      if (!res.write(chunk)) {
        body.pause();
        if (download.heldMs < 0) download.heldMs = now();
        if (guard !== undefined) {
          held = true;
          guard.hold(res);
        }
      }
    };
    const onDrain = (): void => {
      body.resume();
      if (held) {
        held = false;
        guard!.release(res);
      }
    };
    const onEnd = (): void => {
      download.endMs = now();
      if (trailers !== undefined) addTrailers(res, trailers());
      res.end();
    };
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
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      res.off('drain', onDrain);
      res.off('error', onError);
      res.off('finish', onFinish);
      res.off('close', onClose);
      if (held) guard!.release(res);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    res.on('drain', onDrain);
    res.once('error', onError);
    res.once('finish', onFinish);
    res.once('close', onClose);
  });
}

/** Sets `fields` as the response's trailers, less pseudo-headers (which a trailer block may not carry); none when empty. */
function addTrailers(res: RelayTarget, fields: Record<string, string>): void {
  for (const name in fields) if (name.charCodeAt(0) === 0x3a /* : */) delete fields[name];
  if (Object.keys(fields).length > 0) res.addTrailers(fields);
}

/** What a forwarder knew of a request when it failed: the facts both protocols classify a failure from. */
export interface FailureState {
  /** The proxy cut the request body for its slowness (408 already answered or the stream cut). */
  readonly bodyTooSlow: boolean;
  /** The client went away first. */
  readonly clientGone: boolean;
}

/** The text answer a client is owed after a failed dispatch: status, `x-canary-gate-error` value, body. */
export interface FailureAnswer {
  readonly status: number;
  readonly errorHeader: string;
  readonly text: string;
}

/**
 * Classifies a dispatch that failed before the app answered, for HTTP/1.1 and HTTP/2 alike.
 * @param latencyUs the app's time until the failure (less the client's upload wait), µs
 * @param requestComplete whether the client had sent its whole body (a client that left mid-body gets no latency)
 * @returns the result to record and the answer to send (null: none is owed, the client is gone or was answered)
 */
export function dispatchFailure(
  err: unknown,
  state: FailureState,
  latencyUs: number,
  requestComplete: boolean,
): { readonly result: ForwardResult; readonly answer: FailureAnswer | null } {
  if (state.bodyTooSlow) return { result: { status: 408, outcome: 'body_timeout', appLatencyUs: null }, answer: null };
  if (state.clientGone)
    return { result: { status: 0, outcome: 'client_abort', appLatencyUs: requestComplete ? latencyUs : null }, answer: null };
  const code = errorCodeOf(err);
  if (UNFORWARDABLE_CODES.has(code)) {
    // undici refused it before sending anything (a method or header it does not support): the client's problem.
    return {
      result: { status: 400, outcome: 'bad_request', errorCode: code, appLatencyUs: null },
      answer: { status: 400, errorHeader: 'bad_request', text: `canary-gate: request cannot be forwarded (${code})\n` },
    };
  }
  const failure = classifyUpstreamError(err);
  return {
    result: { status: failure.status, outcome: failure.outcome, errorCode: failure.code, appLatencyUs: latencyUs },
    answer: { status: failure.status, errorHeader: failure.outcome, text: `canary-gate: upstream ${failure.outcome} (${failure.code})\n` },
  };
}

/**
 * Classifies a response that failed after its headers were sent, for HTTP/1.1 and HTTP/2 alike.
 * @param status the upstream's status, already sent
 * @param upstreamBrokeFirst the upstream body failed before the client left
 * @param latencyUs the app's time until then, µs
 * @returns the result to record, and whether the caller must cut the response (the only way left to tell the client
 *   that the body is incomplete)
 */
export function relayFailure(
  err: unknown,
  status: number,
  state: FailureState & { readonly upstreamBrokeFirst: boolean },
  latencyUs: number,
): { readonly result: ForwardResult; readonly cut: boolean } {
  if (state.bodyTooSlow) return { result: { status, outcome: 'body_timeout', appLatencyUs: null }, cut: false };
  if (state.clientGone && !state.upstreamBrokeFirst)
    return { result: { status, outcome: 'client_abort', appLatencyUs: latencyUs }, cut: false };
  const failure = classifyUpstreamError(err);
  return {
    result: { status, outcome: failure.outcome === 'timeout' ? 'timeout' : 'reset', errorCode: failure.code, appLatencyUs: latencyUs },
    cut: true,
  };
}

/** The 400 of a request the proxy will not forward. */
function refuse(res: ServerResponse, hasBody: boolean, req: IncomingMessage, code: string, why: string): ForwardResult {
  answer(res, 400, 'bad_request', `canary-gate: ${why} (${code})\n`, hasBody && !req.complete);
  return { status: 400, outcome: 'bad_request', errorCode: code, appLatencyUs: null };
}

async function forward(dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, options: ForwardOptions): Promise<ForwardResult> {
  if (res.destroyed) return { status: 0, outcome: 'client_abort', appLatencyUs: null };
  const reqHeaders = req.headers;
  // HTTP/1.1 framing: a request has a body only when it says so (GET and HEAD usually do not).
  const contentLength = reqHeaders['content-length'];
  const hasBody = contentLength !== undefined ? contentLength !== '0' : reqHeaders['transfer-encoding'] !== undefined;
  if (hostFieldCount(req.rawHeaders) > 1) return refuse(res, hasBody, req, ForwardCodes.HOST_DUPLICATE, 'two Host headers');
  let path = req.url ?? '/';
  let host = reqHeaders.host;
  if (path.charCodeAt(0) !== 0x2f /* / */ && path !== '*') {
    const origin = originFormOf(path);
    if (origin === null)
      return refuse(res, hasBody, req, ForwardCodes.TARGET_INVALID, 'the request target is not a path or an http(s) URL');
    path = origin.path;
    host = origin.host;
    req.url = path;
  }

  const now = options.now ?? defaultNow;
  const abort = new AbortController();
  let clientGone = false;
  let bodyTooSlow = false;
  const onClose = (): void => {
    // 'close' after 'finish' is the normal end; before it, the client (or we, on a cut upstream body) ended it.
    if (!res.writableFinished) {
      clientGone = true;
      abort.abort();
    }
  };
  res.once('close', onClose);
  let upload: UploadWatch | null = null;
  try {
    const headers = endToEndHeaders(reqHeaders);
    if (host !== undefined) headers.host = host;
    setForwardedHeaders(headers, req.socket.remoteAddress, options);

    const dispatchedMs = now();
    if (hasBody) {
      upload = new UploadWatch(req, {
        now,
        timeoutMs: options.clientBodyTimeoutMs ?? 0,
        minRate: options.clientBodyMinRate ?? 0,
        contended: options.isContended,
        onTooSlow: () => {
          bodyTooSlow = true;
          if (!res.headersSent) answer(res, 408, 'body_timeout', 'canary-gate: the request body came too slowly\n', true);
          else res.destroy();
          abort.abort();
        },
      });
    }
    /** The app's time until `endMs`, less what the client made it wait. */
    const appLatencyUs = (endMs: number, clientWaitMs: number): number => Math.max(0, endMs - dispatchedMs - clientWaitMs) * 1000;

    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await dispatcher.request({
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        path,
        headers,
        // undici destroys a failed request's body stream but detaches an IncomingMessage's socket first, so the
        // client connection survives to receive the 502.
        body: hasBody ? req : null,
        signal: abort.signal,
      });
    } catch (err) {
      const failedMs = now();
      const latencyUs = appLatencyUs(failedMs, upload?.flowingMs(failedMs) ?? 0);
      const failed = dispatchFailure(err, { bodyTooSlow, clientGone }, latencyUs, req.complete);
      if (failed.answer !== null) {
        const { status, errorHeader, text } = failed.answer;
        answer(res, status, errorHeader, text, hasBody && !req.complete);
      }
      return failed.result;
    }
    // The app has answered: from here on it waits for no body byte (a client still sending is no longer its time).
    const uploadWaitMs = upload?.flowingMs(now()) ?? 0;

    // Which side broke first: a failing upstream body makes the relay destroy `res`, which also fires 'close'.
    const body = upstream.body;
    let upstreamBrokeFirst = false;
    body.once('error', () => {
      if (!clientGone) upstreamBrokeFirst = true;
    });
    // Once a client that does not keep up has held the response back, the rest of the transfer runs at its pace
    // (TCP flow control reaches the app): the judged latency ends there. Taking out only the paused time would still
    // charge the app with restarting the flow after every pause (up to 90 ms each on loopback, hundreds per large
    // response), which a client reading in small bites could multiply at will.
    const download: Download = { heldMs: -1, endMs: -1 };
    const appEndMs = (): number => (download.heldMs >= 0 ? download.heldMs : download.endMs >= 0 ? download.endMs : now());
    try {
      const responseHeaders = endToEndHeaders(upstream.headers);
      // The app answered before the whole body arrived (undici then drops that upstream connection itself): the client
      // connection closes after this answer, or a trickling client would keep it, sending a body nobody reads.
      if (hasBody && !req.complete) responseHeaders.connection = 'close';
      res.writeHead(upstream.statusCode, responseHeaders);
      await relay(body, res, now, download, options.readGuard);
      return { status: upstream.statusCode, outcome: 'ok', appLatencyUs: appLatencyUs(appEndMs(), uploadWaitMs) };
    } catch (err) {
      body.destroy();
      const failed = relayFailure(
        err,
        upstream.statusCode,
        { bodyTooSlow, clientGone, upstreamBrokeFirst },
        appLatencyUs(appEndMs(), uploadWaitMs),
      );
      if (failed.cut) res.destroy();
      return failed.result;
    }
  } finally {
    upload?.stop();
    res.off('close', onClose);
  }
}
