/**
 * The proxy in front of the app: every request is forwarded with an undici Pool (keep-alive) and recorded once its
 * response has ended (the response's 'close'), with two latencies: the app's (what the gate judges: dispatch to the
 * end of the upstream's response, less the time a slow client made it wait; see ForwardResult.appLatencyUs) and the
 * client-facing total (arrival to the response's end), and whether it was an error of the version (configured status
 * classes, upstream connect failures, resets, timeouts; not a client that left, not the proxy's own refusals).
 *
 * At most `connections` requests run upstream at once; the others wait in a FIFO for at most `queueTimeout` and then
 * get 503 `overloaded` (the sidecar's saturation, never the version's error). A request body slower than
 * `clientBodyTimeout` / `clientBodyMinRate` gets 408 and its connection is closed. While requests wait, a client that
 * holds its response back for over a second loses its connection (read-guard.ts), so that slow readers cannot hold the
 * pool either.
 *
 * Protocols (`proxy.protocol`, `proxy.upstreamProtocol`, chosen once at construction, so that the HTTP/1.1 path does
 * no per-request test for them): HTTP/1.1 with WebSocket upgrades tunnelled on a connection of their own (recorded
 * once, as the handshake: see tunnel.ts), or h2c (HTTP/2 with prior knowledge) with trailers forwarded and gRPC
 * outcomes taken from `grpc-status` (see forward-h2.ts); either to an HTTP/1.1 or an h2c upstream. With `proxy.tls` set the
 * port serves HTTPS and negotiates by ALPN: `h2` (forwarded as h2c streams are) or `http/1.1` (forwarded as on the
 * HTTP/1.1 port, WebSocket upgrades included), X-Forwarded-Proto `https`.
 */
import { createServer, type IncomingMessage, type Server, ServerResponse } from 'node:http';
import {
  createServer as createH2cServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { createServer as createTlsListener, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Pool } from 'undici';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import type { Logger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { readTlsFiles, type TlsMaterial, tlsEnabled, type TlsReloadStats, type TlsWatch, watchTlsFiles } from '../config/tls-files.ts';
import { InFlight } from './in-flight.ts';
import { answer, forwardRequest, type ForwardOptions, type ForwardResult } from './forward.ts';
import { forwardH2 } from './forward-h2.ts';
import { tunnelUpgrade } from './tunnel.ts';
import { createGrpcClassifier, createStatusClassifier, isErrorOutcome, type RequestOutcome } from './outcome.ts';
import { ReadGuard } from './read-guard.ts';
import { createTrustedProxies } from './trusted-proxies.ts';
import { CONTENDED_GRACE_MS } from './upload-watch.ts';
import { UpstreamQueue, type Waiter } from './upstream-queue.ts';
import { listenOn, waitIdle } from './listen.ts';

/** One finished request, as the recorder sees it. */
export interface ProxiedRequest {
  /**
   * The app's latency, µs (fractional), the one the gate judges: from the dispatch upstream (after any queueing) to
   * the end of the upstream's response, less the time spent waiting for a slow client's body and for a client that
   * does not read. Null when the app was not asked for a whole answer: turned away while queued (503), refused by the
   * proxy (400), body too slow (408), or the client left before the request was dispatched or its body arrived.
   */
  readonly appLatencyUs: number | null;
  /** Arrival to the response's end, µs (fractional): what the client saw, queueing and its own slowness included. */
  readonly totalLatencyUs: number;
  /** Time spent queued for an upstream connection, µs; 0 when a connection was free at once. */
  readonly queueWaitUs: number;
  /** Whether the outcome counts as an error of the version. */
  readonly isError: boolean;
  /** The request's method as received. */
  readonly method: string;
  /** The status sent to the client (the upstream's, or the proxy's 400/408/502/503/504); 0 when none was sent. */
  readonly status: number;
  readonly outcome: RequestOutcome;
  /** The request target in origin-form (`/users/42?x=1`), for `http.route`. */
  readonly target: string;
  /** A gRPC answer's status code (0..16, from `grpc-status`), which decided its outcome; undefined for anything else. */
  readonly grpcStatus: number | undefined;
  /** Whether this record is a WebSocket (Upgrade) handshake: its latency is the handshake's, not the connection's lifetime. */
  readonly upgrade: boolean;
}

/** Where finished requests go. Called synchronously once per request; must not throw or do I/O. */
export interface ProxyRecorder {
  record(request: ProxiedRequest): void;
}

export interface ProxyStats {
  /** Requests received whose response has not ended yet. */
  inFlight: number;
  /** Upstream failures (connect errors, resets, timeouts) since start, by code (`ECONNREFUSED`, `UND_ERR_HEADERS_TIMEOUT`). */
  readonly upstreamErrors: Record<string, number>;
  /**
   * Requests refused rather than forwarded, by reason: by the HTTP parser (`header_overflow`, `timeout`, `malformed`),
   * by the proxy (`bad_request`: two Host headers, a target it cannot forward), turned away after `queueTimeout`
   * (`overloaded`), or cut for a body slower than `clientBodyTimeout` / `clientBodyMinRate` (`body_timeout`); and
   * responses cut because their client held them back for over a second while others waited for an upstream
   * connection (`slow_read`: the request is recorded as a client abort).
   */
  readonly rejected: Record<string, number>;
  /** Requests running upstream now (at most `connections`). */
  readonly upstreamInFlight: number;
  /** Requests waiting for an upstream connection now. */
  readonly queued: number;
  /** Finished requests since start, by outcome. */
  readonly outcomes: Record<RequestOutcome, number>;
  /** The TLS port's certificate reloads and the notAfter of the certificate it serves (null without `proxy.tls`). */
  readonly tls: TlsReloadStats | null;
}

export interface ProxyServer {
  /**
   * The client-facing server: an HTTP/1.1 server, an HTTP/2 one when `proxy.protocol` is `h2c`, or an HTTPS one
   * (HTTP/2 and HTTP/1.1 by ALPN) when `proxy.tls` is set.
   */
  readonly server: Server | Http2Server | TlsServer;
  readonly pool: Pool;
  readonly stats: ProxyStats;
  /** Listens on config host:port (port 0 picks a free one). */
  listen(): Promise<{ port: number; host: string }>;
  /**
   * Stops accepting, asks keep-alive clients to close, waits for in-flight requests (at most `drainMs`, then cuts
   * them: they are recorded as client aborts), closes the pool. Calling it again returns the same promise.
   * @param drainMs longest wait for in-flight requests, ms (default 10 000)
   */
  close(drainMs?: number): Promise<void>;
  /** Cuts every client connection and upstream request now. */
  destroy(): Promise<void>;
}

export interface ProxyServerOptions {
  readonly config: Config['proxy'];
  readonly recorder: ProxyRecorder;
  readonly logger: Logger;
  /** High-resolution clock, ms (default `performance.now`). */
  readonly now?: () => number;
  /** X-Forwarded-Proto the proxy sets (default `https` when `proxy.tls` is set, else `http`). */
  readonly forwardedProto?: string;
  /**
   * Idle time after which a client connection is closed: an HTTP/1.1 keep-alive connection between requests (Node
   * adds a second of grace), an HTTP/2 session with no open stream; ms (default 65 000).
   */
  readonly sessionIdleMs?: number;
}

const DEFAULT_DRAIN_MS = 10_000;

/**
 * Limits of the client-facing server. Keep-alive outlives the idle timeout of the usual load balancers and
 * ingresses in front of a pod (60 s), so that they close idle connections first and never send a request on a
 * connection this server is closing.
 */
const SERVER_LIMITS = {
  /**
   * Time to receive a whole request (headers and body), ms: a backstop only. A slow body is cut long before by the
   * proxy's own guard (`clientBodyTimeout`, `clientBodyMinRate`), which does not count the time the app holds it back.
   */
  requestTimeout: 300_000,
  /** Idle time of a client keep-alive connection, ms. */
  keepAliveTimeout: 65_000,
  /** How often Node checks the header and request timeouts, ms. */
  connectionsCheckingInterval: 1_000,
  /** Largest request head (request line and headers), bytes; larger: 431. Node's default. */
  maxHeaderSize: 16_384,
} as const;

/**
 * The answer to a request the HTTP parser refused before it reached the proxy, by Node's error code: oversized
 * heads 431, slow heads 408, anything malformed (invalid method, conflicting Content-Length and Transfer-Encoding,
 * bad chunking) 400. Resets by the client get no answer.
 */
export function rejectionOf(code: string | undefined): { status: number; reason: string } | null {
  if (code === 'ECONNRESET' || code === 'EPIPE') return null;
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'header_overflow' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'HPE_HEADERS_TIMEOUT') return { status: 408, reason: 'timeout' };
  return { status: 400, reason: 'malformed' };
}
/**
 * Which Upgrade requests are tunnelled: WebSocket handshakes only (Node asks only for requests that carry Upgrade).
 * Others (`Upgrade: h2c` from an HTTP/1.1 client) are forwarded as plain requests without the hop-by-hop Upgrade, so
 * that their bodies are streamed as usual and the app answers them over HTTP/1.1.
 */
function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase().includes('websocket');
}
/**
 * HTTP/2: once an answer is sent before the request body has ended (a 408 for a body too slow, a 503, an app that
 * answered early), asks the client to stop sending with RST_STREAM NO_ERROR (RFC 9113 section 8.1). Without it the
 * stream stays open, half-closed, for as long as the client keeps sending into a body nobody reads, and the request is
 * neither recorded nor drained.
 */
function refuseRestOfBody(res: Http2ServerResponse): void {
  const stream = res.stream;
  // A request without a body (its HEADERS ended the stream) closes by itself once answered: no RST_STREAM for it.
  if (stream.endAfterHeaders || stream.destroyed || stream.closed) return;
  // With NO_ERROR on a stream whose answer is ending, Node sends the RST_STREAM only once the answer is flushed.
  stream.close(0 /* NO_ERROR */);
}
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/**
 * @throws CanaryGateError `CG_CONFIG_INVALID` naming the field when `proxy.tls` is set and its files cannot be read,
 *   do not parse, or do not match (the config loader checks them first; this is the read the server uses)
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const { config, recorder, logger } = options;
  const now = options.now ?? performance.now.bind(performance);
  const h2c = config.protocol === 'h2c';
  const tls = tlsEnabled(config.tls);
  const forwardOptions: ForwardOptions = {
    forwardedProto: options.forwardedProto ?? (tls ? 'https' : 'http'),
    isTrustedProxy: createTrustedProxies(config.trustedProxies),
    clientBodyTimeoutMs: config.clientBodyTimeout,
    clientBodyMinRate: config.clientBodyMinRate,
    // Read by the guards' periodic checks only, never per request: `queue` exists by the time either runs.
    isContended: () => queue.queued > 0,
    readGuard: new ReadGuard({
      graceMs: CONTENDED_GRACE_MS,
      contended: () => queue.queued > 0,
      now,
      onCut: () => reject('slow_read'),
    }),
    now,
  };
  const isErrorStatus = createStatusClassifier(config.errorStatuses);
  // The Pool never sees credentials of the upstream URL (undici would not send them anyway), so no error of its can carry them.
  const origin = new URL(config.upstream);
  origin.username = '';
  origin.password = '';
  const pool = new Pool(origin, {
    connections: config.connections,
    pipelining: 1,
    // h2c: HTTP/2 with prior knowledge. However undici spreads streams over its sessions, the queue lets at most
    // `connections` requests upstream at once. The Pool reads `useH2c` at its top level for its connector (undici
    // 8.12: `h2Options.useH2c` reaches only a Client's own connector).
    ...(config.upstreamProtocol === 'h2c' ? { allowH2: true, useH2c: true } : {}),
    connect: { timeout: config.connectTimeout },
    headersTimeout: config.headersTimeout,
    bodyTimeout: config.bodyTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
  });
  const queue = new UpstreamQueue(config.connections, config.queueTimeout, now);
  const stats: ProxyStats = {
    inFlight: 0,
    upstreamErrors: {},
    rejected: {},
    outcomes: {
      ok: 0,
      status_error: 0,
      connect_error: 0,
      reset: 0,
      timeout: 0,
      client_abort: 0,
      overloaded: 0,
      body_timeout: 0,
      bad_request: 0,
    },
    get upstreamInFlight() {
      return queue.inFlight;
    },
    get queued() {
      return queue.queued;
    },
    get tls() {
      return tlsListener?.watch?.stats ?? (tlsListener === null ? null : { reloaded: 0, failed: 0, notAfterMs: tlsListener.notAfterMs });
    },
  };
  /** Responses not ended yet, so that a drain can ask their clients to close. */
  const active = new InFlight<ServerResponse>();
  let draining = false;
  let onIdle: (() => void) | null = null;
  const reject = (reason: string): void => {
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1;
  };

  /** Runs once per request, when both its response has closed and its result is known. */
  const done = (slot: number, req: IncomingMessage, totalUs: number, queueWaitUs: number, result: ForwardResult): void => {
    active.delete(slot);
    stats.inFlight--;
    let outcome = result.outcome;
    if (outcome === 'ok' && isErrorStatus(result.status)) outcome = 'status_error';
    stats.outcomes[outcome]++;
    if (outcome === 'body_timeout' || outcome === 'bad_request') reject(outcome);
    try {
      recorder.record({
        appLatencyUs: result.appLatencyUs,
        totalLatencyUs: totalUs,
        queueWaitUs,
        isError: isErrorOutcome(outcome),
        method: req.method ?? 'GET',
        status: result.status,
        outcome,
        target: req.url ?? '/',
        grpcStatus: result.grpcStatus,
        upgrade: false,
      });
    } catch (err) {
      logger.error({ err }, 'recorder failed; request not recorded');
    }
    if (result.errorCode !== undefined) {
      if (outcome === 'connect_error' || outcome === 'reset' || outcome === 'timeout') {
        stats.upstreamErrors[result.errorCode] = (stats.upstreamErrors[result.errorCode] ?? 0) + 1;
        logger.warn({ outcome, code: result.errorCode, status: result.status, method: req.method, path: req.url }, 'upstream failure');
      } else {
        logger.debug({ code: result.errorCode, status: result.status, method: req.method, path: req.url }, 'request not forwarded');
      }
    }
    if (stats.inFlight === 0 && onIdle !== null) onIdle();
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const arrivalMs = now();
    stats.inFlight++;
    const slot = active.add(res);
    // HTTP/2 (h2c, or h2 by ALPN) has no Connection header: a stream's unread body is the stream's, not the connection's.
    const h2 = h2c || (tls && req.httpVersionMajor === 2);
    if (draining && !h2) res.setHeader('connection', 'close');
    let totalUs = -1;
    let queueWaitUs = 0;
    let result: ForwardResult | null = null;
    let waiter: Waiter | null = null;
    const settle = (r: ForwardResult): void => {
      result = r;
      if (totalUs >= 0) done(slot, req, totalUs, queueWaitUs, r);
      else if (h2 && !req.complete) refuseRestOfBody(res as unknown as Http2ServerResponse);
    };
    res.once('close', () => {
      totalUs = (now() - arrivalMs) * 1000;
      if (waiter !== null) {
        // The client left while queued: nothing was sent upstream.
        queue.cancel(waiter);
        waiter = null;
        queueWaitUs = totalUs;
        result = { status: 0, outcome: 'client_abort', appLatencyUs: null };
      }
      if (result !== null) done(slot, req, totalUs, queueWaitUs, result);
    });
    const start = (waitedMs: number): void => {
      waiter = null;
      queueWaitUs = waitedMs * 1000;
      // forwardRequest never rejects.
      void forward(req, res).then((r) => {
        queue.leave();
        settle(r);
      });
    };
    const expire = (waitedMs: number): void => {
      waiter = null;
      queueWaitUs = waitedMs * 1000;
      reject('overloaded');
      if (!res.headersSent && !res.destroyed) {
        const unread = !h2 && !req.complete;
        answer(res, 503, 'overloaded', `canary-gate: overloaded, no upstream connection within ${config.queueTimeout} ms\n`, unread);
      }
      settle({ status: 503, outcome: 'overloaded', appLatencyUs: null });
    };
    waiter = queue.enter(start, expire);
  };

  const h2Options = { ...forwardOptions, isGrpcError: createGrpcClassifier(config.grpcErrorCodes) };
  const forwardHttp2 = (req: IncomingMessage, res: ServerResponse): Promise<ForwardResult> =>
    forwardH2(pool, req as unknown as Http2ServerRequest, res as unknown as Http2ServerResponse, h2Options);
  const forwardHttp1 = (req: IncomingMessage, res: ServerResponse): Promise<ForwardResult> =>
    forwardRequest(pool, req, res, forwardOptions);
  /** The forwarder of this listener's protocol, chosen once; on the TLS port, by the protocol ALPN chose. */
  const forward: (req: IncomingMessage, res: ServerResponse) => Promise<ForwardResult> = h2c
    ? forwardHttp2
    : tls
      ? (req, res) => (req.httpVersionMajor === 2 ? forwardHttp2(req, res) : forwardHttp1(req, res))
      : forwardHttp1;
  /** Joined WebSocket connections (client side), cut at shutdown: they are not requests, a drain does not wait for them. */
  const tunnels = new Set<Duplex>();
  /** Open HTTP/2 sessions, closed (GOAWAY) at a drain and destroyed at the end of it. */
  const sessions = new Set<Http2Session>();
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const arrivalMs = now();
    if (draining) {
      socket.destroy();
      return;
    }
    // tunnelUpgrade never rejects.
    void tunnelUpgrade(origin, req, socket, head, {
      ...forwardOptions,
      headersTimeoutMs: config.headersTimeout,
      onJoined: (client) => {
        tunnels.add(client);
        client.once('close', () => tunnels.delete(client));
      },
    }).then((result) => {
      let outcome = result.outcome;
      if (outcome === 'ok' && isErrorStatus(result.status)) outcome = 'status_error';
      stats.outcomes[outcome]++;
      try {
        recorder.record({
          appLatencyUs: result.appLatencyUs,
          totalLatencyUs: (now() - arrivalMs) * 1000,
          queueWaitUs: 0,
          isError: isErrorOutcome(outcome),
          method: req.method ?? 'GET',
          status: result.status,
          outcome,
          target: req.url ?? '/',
          grpcStatus: undefined,
          upgrade: true,
        });
      } catch (err) {
        logger.error({ err }, 'recorder failed; upgrade not recorded');
      }
      if (outcome === 'connect_error' || outcome === 'reset' || outcome === 'timeout') {
        const code = result.errorCode ?? 'UNKNOWN';
        stats.upstreamErrors[code] = (stats.upstreamErrors[code] ?? 0) + 1;
        logger.warn({ outcome, code, status: result.status, method: req.method, path: req.url }, 'upstream failure on upgrade');
      }
    });
  };

  // One server per protocol, each with its own limits; the TLS port hands each connection, once ALPN has chosen, to the
  // one of its protocol, so that HTTP/1.1 over TLS keeps every limit, the WebSocket tunnel and the drain of the
  // cleartext port (Node's own `allowHTTP1` fallback enforces neither clientHeadersTimeout nor requestTimeout).
  const httpServer = h2c
    ? null
    : createServer(
        {
          ...SERVER_LIMITS,
          keepAliveTimeout: options.sessionIdleMs ?? SERVER_LIMITS.keepAliveTimeout,
          headersTimeout: config.clientHeadersTimeout,
          shouldUpgradeCallback: isWebSocketUpgrade,
        },
        handle,
      );
  const h2Server =
    h2c || tls ? createH2cServer({}, handle as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void) : null;
  const tlsListener = tls ? createTlsServer(config.tls, logger) : null;
  const tlsServer = tlsListener?.server ?? null;
  /** The server that listens on the port. */
  const server: Server | Http2Server | TlsServer = tlsServer ?? h2Server ?? httpServer!;
  server.on('error', (err: Error) => logger.error({ err }, 'proxy server error'));
  if (tlsServer !== null) {
    tlsServer.on('secureConnection', (socket: TLSSocket) => {
      // No ALPN from the client (false): HTTP/1.1, as Node's own allowHTTP1 fallback reads it.
      (socket.alpnProtocol === 'h2' ? h2Server! : httpServer!).emit('connection', socket);
    });
    tlsServer.on('tlsClientError', (err: NodeJS.ErrnoException) => logger.debug({ code: err.code }, 'TLS handshake failed'));
    // Node starts the HTTP/1.1 server's header and request timeout checks (every connectionsCheckingInterval) when it
    // listens; this one never listens itself, so it is told it does. test/protocols/tls.test.ts proves the 408.
    httpServer!.emit('listening');
  }
  if (h2Server !== null) {
    /** Open streams per session, so that an idle session is closed and a quiet long stream (gRPC) is not. */
    const openStreams = new Map<Http2Session, number>();
    h2Server.on('session', (session: Http2Session) => {
      sessions.add(session);
      openStreams.set(session, 0);
      session.once('close', () => {
        sessions.delete(session);
        openStreams.delete(session);
      });
      session.on('error', (err) => logger.debug({ err }, 'HTTP/2 session error'));
    });
    h2Server.on('stream', (stream: ServerHttp2Stream) => {
      const session = stream.session;
      if (session === undefined || !openStreams.has(session)) return;
      openStreams.set(session, openStreams.get(session)! + 1);
      stream.once('close', () => {
        if (openStreams.has(session)) openStreams.set(session, openStreams.get(session)! - 1);
      });
    });
    // A session with no stream for the HTTP/1.1 keep-alive time is closed (GOAWAY), as an idle HTTP/1.1 connection is.
    // With a 'timeout' listener Node destroys no session itself (without one it would, quiet gRPC streams included).
    h2Server.setTimeout(options.sessionIdleMs ?? SERVER_LIMITS.keepAliveTimeout);
    h2Server.on('timeout', (session: Http2Session) => {
      if (openStreams.get(session) === 0) session.close();
    });
  }
  if (httpServer !== null) {
    httpServer.on('upgrade', upgrade);
    httpServer.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const rejection = rejectionOf(err.code);
      if (rejection === null || !socket.writable) {
        socket.destroy();
        return;
      }
      stats.rejected[rejection.reason] = (stats.rejected[rejection.reason] ?? 0) + 1;
      logger.debug({ code: err.code, status: rejection.status }, 'request refused by the HTTP parser');
      socket.end(`HTTP/1.1 ${rejection.status} ${STATUS_TEXT[rejection.status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
  }

  /** Cuts every client connection: HTTP/1.1 ones, HTTP/2 sessions, joined tunnels. */
  const cutAll = (): void => {
    for (const session of sessions) session.destroy();
    httpServer?.closeAllConnections();
    for (const tunnel of tunnels) tunnel.destroy();
  };

  const closeServer = (): Promise<void> =>
    new Promise((resolve) => {
      tlsListener?.watch?.stop();
      // TLS port: the HTTP/1.1 server never listened; closing it stops its timeout checks and closes its idle
      // keep-alive connections (its callback gets ERR_SERVER_NOT_RUNNING, and nobody waits for it).
      if (server !== httpServer) httpServer?.close();
      // Resolves also when the server was not listening (the callback then gets ERR_SERVER_NOT_RUNNING).
      server.close(() => resolve());
    });

  let closing: Promise<void> | null = null;
  const drainAndClose = async (drainMs: number): Promise<void> => {
    draining = true;
    const closed = closeServer(); // stops accepting; closes idle keep-alive connections
    for (const session of sessions) session.close(); // HTTP/2: GOAWAY, streams in flight finish, no new ones
    // HTTP/1.1 responses (on the TLS port too; an HTTP/2 response is no http.ServerResponse).
    for (const res of active) if (res instanceof ServerResponse && !res.headersSent) res.setHeader('connection', 'close');
    if (stats.inFlight > 0) {
      await waitIdle((fn) => {
        onIdle = fn;
      }, drainMs);
      if (stats.inFlight > 0) logger.warn({ inFlight: stats.inFlight, drainMs }, 'proxy drain timed out; cutting the remaining requests');
    }
    // Whatever is left: idle keep-alive connections that finished during the drain, requests past the deadline, tunnels.
    cutAll();
    forwardOptions.readGuard?.destroy();
    await closed;
    try {
      await pool.close();
    } catch (err) {
      if (!pool.destroyed) throw err; // destroy() ran meanwhile: what close() wanted is done
    }
  };

  return {
    server,
    pool,
    stats,
    listen: () => listenOn(server, config.port, config.host),
    close(drainMs = DEFAULT_DRAIN_MS) {
      closing ??= drainAndClose(drainMs);
      return closing;
    },
    async destroy() {
      draining = true;
      queue.destroy();
      forwardOptions.readGuard?.destroy();
      const closed = closeServer();
      cutAll();
      await closed;
      await pool.destroy();
    },
  };
}

/**
 * The TLS port's listener: TLS with ALPN `h2` and `http/1.1`; each connection, once its handshake is done, goes to
 * the HTTP/2 or the HTTP/1.1 server ('secureConnection'). With `clientCaFile` it asks every client for a certificate
 * and refuses the handshake without one those CAs signed (mutual TLS). With `reloadInterval` above 0 the files are
 * watched and a changed valid set replaces the secure context for new connections (src/config/tls-files.ts).
 * @throws CanaryGateError `CG_CONFIG_INVALID` naming the field when a file cannot be read or checked
 */
function createTlsServer(files: Config['proxy']['tls'], logger: Logger): { server: TlsServer; watch: TlsWatch | null; notAfterMs: number } {
  const material = readTlsFiles(files);
  if (Array.isArray(material)) {
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `invalid config: ${material.length} problem(s)`, {
      details: material.map((p) => `${p.path}: ${p.reason}`),
    });
  }
  const context = (m: TlsMaterial) => (m.ca === null ? { cert: m.cert, key: m.key } : { cert: m.cert, key: m.key, ca: m.ca });
  // With a client CA file: mutual TLS, a client without a certificate those CAs signed fails the handshake.
  const mutual = material.ca !== null ? { requestCert: true, rejectUnauthorized: true } : {};
  const server = createTlsListener({ ...context(material), ...mutual, ALPNProtocols: ['h2', 'http/1.1'] });
  const watch =
    files.reloadInterval > 0
      ? watchTlsFiles(files, material, files.reloadInterval, (next) => server.setSecureContext(context(next)), logger)
      : null;
  return { server, watch, notAfterMs: material.notAfterMs };
}
