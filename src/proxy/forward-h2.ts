/**
 * Forwards one HTTP/2 request (Node's http2 compatibility API, an h2c listener) to the upstream with an undici
 * dispatcher, and streams the answer back with its trailers: what gRPC needs. The HTTP/1.1 path (forward.ts) stays as
 * it is; this one differs where HTTP/2 does:
 * - pseudo-headers (`:path`, `:authority`) are not copied; `:authority` becomes the upstream request's Host (undici
 *   sends it as `:authority` again to an h2c upstream);
 * - a request has a body unless its HEADERS frame ended the stream (gRPC sends no Content-Length);
 * - `te: trailers` is kept (gRPC servers may require it) while every other hop-by-hop header is dropped;
 * - the upstream's trailers (`grpc-status`, `grpc-message`) are sent as the response's trailers;
 * - a trailers-only gRPC answer (`grpc-status` in its headers) is sent as one HEADERS frame that ends the stream;
 * - a gRPC answer (`content-type: application/grpc...`) takes its outcome from `grpc-status` (the trailers, or the
 *   headers of a trailers-only answer), not from the HTTP status, which is 200 for every gRPC outcome. A gRPC answer
 *   that ends without any `grpc-status` is INTERNAL (13), as gRPC clients read it;
 * - the slow-upload guard counts the stream's own body bytes (the session's socket carries its neighbours' too): a
 *   stream too slow is answered 408 or cancelled alone.
 *
 * Request trailers are not forwarded (undici sends none); gRPC clients do not send any.
 *
 * Never throws: every failure becomes a ForwardResult, as in forward.ts.
 */
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  dispatchFailure,
  type Download,
  endToEndHeaders,
  type ForwardOptions,
  type ForwardResult,
  relay,
  relayFailure,
  setForwardedHeaders,
} from './forward.ts';
import { errorCodeOf } from './outcome.ts';
import { UploadWatch } from './upload-watch.ts';

export interface ForwardH2Options extends ForwardOptions {
  /** Whether a gRPC status code counts as an error of the version (config `proxy.grpcErrorCodes`). */
  readonly isGrpcError: (code: number) => boolean;
}

/** What a gRPC client reads when an answer ends without `grpc-status` (gRPC's "PROTOCOL-HTTP2" mapping). */
const GRPC_INTERNAL = 13;
const defaultNow = performance.now.bind(performance);

/** The gRPC status of an answer: from its trailers, else from its headers (trailers-only); -1 when neither has one. */
export function grpcStatusOf(headers: Record<string, unknown>, trailers: Record<string, unknown> | null): number {
  const raw = trailers?.['grpc-status'] ?? headers['grpc-status'];
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (typeof text !== 'string' || !/^[0-9]{1,2}$/.test(text)) return -1;
  return Number(text);
}

/** Whether a content type is gRPC's (`application/grpc`, `application/grpc+proto`, `application/grpc-web` excluded). */
export function isGrpcContentType(contentType: unknown): boolean {
  if (typeof contentType !== 'string') return false;
  return contentType === 'application/grpc' || contentType.startsWith('application/grpc+') || contentType.startsWith('application/grpc;');
}

/** An answer from the proxy itself, before any header was sent. HTTP/2 has no Connection header to close with. */
function answerH2(res: Http2ServerResponse, status: number, errorHeader: string, text: string): void {
  if (res.headersSent || res.stream.destroyed) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-canary-gate-error': errorHeader });
  res.end(text);
}

/**
 * Forwards an HTTP/2 request `req` to the dispatcher's origin and streams the answer, trailers included, into `res`.
 * Failures as in {@link forwardRequest} (502/504 before headers, a reset stream after them, 408 for a body too slow);
 * a gRPC answer whose `grpc-status` is one of `isGrpcError`'s codes is `status_error` whatever its HTTP status.
 */
export async function forwardH2(
  dispatcher: Dispatcher,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  options: ForwardH2Options,
): Promise<ForwardResult> {
  try {
    return await forward(dispatcher, req, res, options);
  } catch (err) {
    const code = errorCodeOf(err);
    if (!res.headersSent) answerH2(res, 502, 'reset', `canary-gate: proxy failure (${code})\n`);
    else res.stream.close(0x2 /* INTERNAL_ERROR */);
    return { status: 502, outcome: 'reset', errorCode: code, appLatencyUs: null };
  }
}

async function forward(
  dispatcher: Dispatcher,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  options: ForwardH2Options,
): Promise<ForwardResult> {
  const stream = res.stream;
  if (stream.destroyed) return { status: 0, outcome: 'client_abort', appLatencyUs: null };
  const now = options.now ?? defaultNow;
  const hasBody = !stream.endAfterHeaders;
  const headers = endToEndHeaders(req.headers);
  for (const name in headers) if (name.charCodeAt(0) === 0x3a /* : */) delete headers[name];
  if (req.headers.te === 'trailers') headers.te = 'trailers';
  const authority = req.headers[':authority'] ?? req.headers.host;
  if (typeof authority === 'string') headers.host = authority;
  setForwardedHeaders(headers, req.socket?.remoteAddress, options);

  const abort = new AbortController();
  let clientGone = false;
  let bodyTooSlow = false;
  const onClose = (): void => {
    if (!res.writableFinished) {
      clientGone = true;
      abort.abort();
    }
  };
  res.once('close', onClose);
  let upload: UploadWatch | null = null;
  try {
    const dispatchedMs = now();
    if (hasBody) {
      // Per stream: the session's socket carries its neighbours' bytes too. A stream too slow is answered 408 (or
      // cancelled once the answer has begun) alone; the session and its other streams go on.
      upload = new UploadWatch(req as never, {
        perStream: true,
        now,
        timeoutMs: options.clientBodyTimeoutMs ?? 0,
        minRate: options.clientBodyMinRate ?? 0,
        contended: options.isContended,
        onTooSlow: () => {
          bodyTooSlow = true;
          if (!res.headersSent) answerH2(res, 408, 'body_timeout', 'canary-gate: the request body came too slowly\n');
          else stream.close(0x8 /* CANCEL */);
          abort.abort();
        },
      });
    }
    const appLatencyUs = (endMs: number, clientWaitMs: number): number => Math.max(0, endMs - dispatchedMs - clientWaitMs) * 1000;

    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await dispatcher.request({
        method: req.method as Dispatcher.HttpMethod,
        path: req.url,
        headers,
        body: hasBody ? (req as unknown as Readable) : null,
        signal: abort.signal,
      });
    } catch (err) {
      const failedMs = now();
      const latencyUs = appLatencyUs(failedMs, upload?.flowingMs(failedMs) ?? 0);
      const failed = dispatchFailure(err, { bodyTooSlow, clientGone }, latencyUs, req.complete);
      if (failed.answer !== null) answerH2(res, failed.answer.status, failed.answer.errorHeader, failed.answer.text);
      return failed.result;
    }
    const uploadWaitMs = upload?.flowingMs(now()) ?? 0;
    const body = upstream.body;
    let upstreamBrokeFirst = false;
    body.once('error', () => {
      if (!clientGone) upstreamBrokeFirst = true;
    });
    const download: Download = { heldMs: -1, endMs: -1 };
    const appEndMs = (): number => (download.heldMs >= 0 ? download.heldMs : download.endMs >= 0 ? download.endMs : now());
    const grpc = isGrpcContentType(upstream.headers['content-type']);
    try {
      const responseHeaders = endToEndHeaders(upstream.headers);
      for (const name in responseHeaders) if (name.charCodeAt(0) === 0x3a) delete responseHeaders[name];
      if (grpc && responseHeaders['grpc-status'] !== undefined) {
        // A trailers-only answer (a gRPC error without messages): its one HEADERS frame must end the stream, or the
        // client reads the status as missing. The compatibility API sends headers set with setHeader together with
        // the end of the stream (writeHead would send them at once, alone).
        res.statusCode = upstream.statusCode;
        for (const name in responseHeaders) res.setHeader(name, responseHeaders[name]!);
      } else {
        res.writeHead(upstream.statusCode, responseHeaders);
      }
      await relay(body, res, now, download, options.readGuard, () => ({ ...upstream.trailers }));
      const latencyUs = appLatencyUs(appEndMs(), uploadWaitMs);
      if (!grpc) return { status: upstream.statusCode, outcome: 'ok', appLatencyUs: latencyUs };
      const found = grpcStatusOf(upstream.headers, upstream.trailers);
      const grpcStatus = found < 0 ? GRPC_INTERNAL : found;
      return {
        status: upstream.statusCode,
        outcome: options.isGrpcError(grpcStatus) ? 'status_error' : 'ok',
        appLatencyUs: latencyUs,
        grpcStatus,
      };
    } catch (err) {
      body.destroy();
      const failed = relayFailure(
        err,
        upstream.statusCode,
        { bodyTooSlow, clientGone, upstreamBrokeFirst },
        appLatencyUs(appEndMs(), uploadWaitMs),
      );
      if (failed.cut) stream.close(0x2 /* INTERNAL_ERROR */);
      return failed.result;
    }
  } finally {
    upload?.stop();
    res.off('close', onClose);
  }
}
