/**
 * The proxy in front of the app: every request is forwarded with an undici Pool (keep-alive) and recorded under the
 * pod's version when its response has ended: latency in µs from arrival to end, and whether it was an error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { Logger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { forwardRequest } from './forward.ts';
import { createStatusClassifier, isErrorOutcome, type RequestOutcome } from './outcome.ts';

/** Where finished requests go. Must be synchronous and must not throw. */
export interface ProxyRecorder {
  /** @param latencyUs arrival to response end, µs */
  record(latencyUs: number, isError: boolean): void;
}

export interface ProxyStats {
  inFlight: number;
  /** Requests by outcome since start. */
  readonly outcomes: Record<RequestOutcome, number>;
}

export interface ProxyServer {
  readonly server: Server;
  readonly pool: Pool;
  readonly stats: ProxyStats;
  /** Listens on config host:port (port 0 picks a free one). */
  listen(): Promise<{ port: number; host: string }>;
  /** Stops accepting, waits for in-flight requests (at most `drainMs`, then cuts them), closes the pool. */
  close(drainMs?: number): Promise<void>;
  /** Cuts every connection now. */
  destroy(): Promise<void>;
}

export interface ProxyServerOptions {
  readonly config: Config['proxy'];
  readonly recorder: ProxyRecorder;
  readonly logger: Logger;
  /** High-resolution clock, ms (default performance.now). */
  readonly now?: () => number;
}

export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const { config, recorder, logger } = options;
  const now = options.now ?? (() => performance.now());
  const isErrorStatus = createStatusClassifier(config.errorStatuses);
  const pool = new Pool(config.upstream, {
    connections: config.connections,
    pipelining: 1,
    connect: { timeout: config.connectTimeout },
    headersTimeout: config.headersTimeout,
    bodyTimeout: config.bodyTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
  });
  const stats: ProxyStats = { inFlight: 0, outcomes: { ok: 0, status_error: 0, connect_error: 0, reset: 0, timeout: 0, client_abort: 0 } };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startMs = now();
    stats.inFlight++;
    void forwardRequest(pool, req, res).then((result) => {
      stats.inFlight--;
      let outcome = result.outcome;
      if (outcome === 'ok' && isErrorStatus(result.status)) outcome = 'status_error';
      stats.outcomes[outcome]++;
      recorder.record((now() - startMs) * 1000, isErrorOutcome(outcome));
      if (result.errorCode !== undefined && outcome !== 'client_abort') {
        logger.warn({ outcome, code: result.errorCode, method: req.method, path: req.url }, 'upstream failure');
      }
    });
  };

  const server = createServer({ requestTimeout: 300_000, headersTimeout: 60_000, keepAliveTimeout: 5_000 }, handle);

  return {
    server,
    pool,
    stats,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          resolve({ port: a.port, host: a.address });
        });
      }),
    async close(drainMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + drainMs;
      while (stats.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      server.closeAllConnections();
      await closed;
      await pool.close();
    },
    async destroy() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await pool.destroy();
    },
  };
}
