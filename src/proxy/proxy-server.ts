/**
 * The proxy in front of the app: every request is forwarded with an undici Pool (keep-alive) and recorded once its
 * response has ended (the response's 'close'), with two latencies: the app's (what the gate judges: dispatch to the
 * end of the upstream's response, less the time a slow client made it wait; see ForwardResult.appLatencyUs) and the
 * client-facing total (arrival to the response's end), and whether it was an error of the version (configured status
 * classes, upstream connect failures, resets, timeouts; not a client that left, not the proxy's own refusals).
 *
 * At most `connections` requests run upstream at once; the others wait in a FIFO for at most `queueTimeout` and then
 * get 503 `overloaded` (the sidecar's saturation, never the version's error). A request body slower than
 * `clientBodyTimeout` / `clientBodyMinRate` gets 408 and its connection is closed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Logger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { answer, forwardRequest, type ForwardOptions, type ForwardResult } from './forward.ts';
import { createStatusClassifier, isErrorOutcome, type RequestOutcome } from './outcome.ts';
import { createTrustedProxies } from './trusted-proxies.ts';
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
   * (`overloaded`), or cut for a body slower than `clientBodyTimeout` / `clientBodyMinRate` (`body_timeout`).
   */
  readonly rejected: Record<string, number>;
  /** Requests running upstream now (at most `connections`). */
  readonly upstreamInFlight: number;
  /** Requests waiting for an upstream connection now. */
  readonly queued: number;
  /** Finished requests since start, by outcome. */
  readonly outcomes: Record<RequestOutcome, number>;
}

export interface ProxyServer {
  readonly server: Server;
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
  /** X-Forwarded-Proto the proxy sets (default `http`). */
  readonly forwardedProto?: string;
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
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const { config, recorder, logger } = options;
  const now = options.now ?? performance.now.bind(performance);
  const forwardOptions: ForwardOptions = {
    forwardedProto: options.forwardedProto ?? 'http',
    isTrustedProxy: createTrustedProxies(config.trustedProxies),
    clientBodyTimeoutMs: config.clientBodyTimeout,
    clientBodyMinRate: config.clientBodyMinRate,
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
  };
  /** Responses not ended yet, so that a drain can ask their clients to close. */
  const active = new Set<ServerResponse>();
  let draining = false;
  let onIdle: (() => void) | null = null;
  const reject = (reason: string): void => {
    stats.rejected[reason] = (stats.rejected[reason] ?? 0) + 1;
  };

  /** Runs once per request, when both its response has closed and its result is known. */
  const done = (req: IncomingMessage, res: ServerResponse, totalUs: number, queueWaitUs: number, result: ForwardResult): void => {
    active.delete(res);
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
    active.add(res);
    if (draining) res.setHeader('connection', 'close');
    let totalUs = -1;
    let queueWaitUs = 0;
    let result: ForwardResult | null = null;
    let waiter: Waiter | null = null;
    const settle = (r: ForwardResult): void => {
      result = r;
      if (totalUs >= 0) done(req, res, totalUs, queueWaitUs, r);
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
      if (result !== null) done(req, res, totalUs, queueWaitUs, result);
    });
    const start = (waitedMs: number): void => {
      waiter = null;
      queueWaitUs = waitedMs * 1000;
      // forwardRequest never rejects.
      void forwardRequest(pool, req, res, forwardOptions).then((r) => {
        queue.leave();
        settle(r);
      });
    };
    const expire = (waitedMs: number): void => {
      waiter = null;
      queueWaitUs = waitedMs * 1000;
      reject('overloaded');
      if (!res.headersSent && !res.destroyed) {
        const unread = !req.complete;
        answer(res, 503, 'overloaded', `canary-gate: overloaded, no upstream connection within ${config.queueTimeout} ms\n`, unread);
      }
      settle({ status: 503, outcome: 'overloaded', appLatencyUs: null });
    };
    waiter = queue.enter(start, expire);
  };

  const server = createServer({ ...SERVER_LIMITS, headersTimeout: config.clientHeadersTimeout }, handle);
  server.on('error', (err) => logger.error({ err }, 'proxy server error'));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const rejection = rejectionOf(err.code);
    if (rejection === null || !socket.writable) {
      socket.destroy();
      return;
    }
    stats.rejected[rejection.reason] = (stats.rejected[rejection.reason] ?? 0) + 1;
    logger.debug({ code: err.code, status: rejection.status }, 'request refused by the HTTP parser');
    socket.end(`HTTP/1.1 ${rejection.status} ${STATUS_TEXT[rejection.status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });

  const closeServer = (): Promise<void> =>
    new Promise((resolve) => {
      // Resolves also when the server was not listening (the callback then gets ERR_SERVER_NOT_RUNNING).
      server.close(() => resolve());
    });

  let closing: Promise<void> | null = null;
  const drainAndClose = async (drainMs: number): Promise<void> => {
    draining = true;
    const closed = closeServer(); // stops accepting; closes idle keep-alive connections
    for (const res of active) if (!res.headersSent) res.setHeader('connection', 'close');
    if (stats.inFlight > 0) {
      await waitIdle((fn) => {
        onIdle = fn;
      }, drainMs);
      if (stats.inFlight > 0) logger.warn({ inFlight: stats.inFlight, drainMs }, 'proxy drain timed out; cutting the remaining requests');
    }
    // Whatever is left: idle keep-alive connections that finished during the drain, and requests past the deadline.
    server.closeAllConnections();
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
      const closed = closeServer();
      server.closeAllConnections();
      await closed;
      await pool.destroy();
    },
  };
}
