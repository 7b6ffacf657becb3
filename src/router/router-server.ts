/**
 * The router's HTTP server: each request goes to the baseline's or the canary's upstream, as the version picker says
 * at the current weight, through the proxy's forwarding (forwardRequest with an undici Pool per upstream, so headers,
 * streaming and upstream failures behave as in the sidecar: 502 on a connect failure or reset, 504 on a timeout).
 * Every response, the router's own 502/504 included, carries `x-canary-gate-version: <version>`.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { Pool } from 'undici';
import type { Logger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { ROUTER_FAILURES, type RoutedVersion, type RouterFailure } from '../metrics/router-metrics.ts';
import { forwardRequest } from '../proxy/index.ts';
import type { Side, VersionPicker } from './version-picker.ts';
import { listenOn, waitIdle } from '../proxy/listen.ts';

/** The response header that names the version that served the request. */
export const VERSION_HEADER = 'x-canary-gate-version';

/** Idle time of a client keep-alive connection, ms: longer than the usual load balancer's 60 s, as the proxy's. */
const CLIENT_KEEP_ALIVE_MS = 65_000;
/** Time to receive a whole request, ms (the proxy's limit). */
const REQUEST_TIMEOUT_MS = 300_000;
const DEFAULT_DRAIN_MS = 10_000;

export interface RouterServerOptions {
  /** Where to listen (config router.host, router.port). */
  readonly host: string;
  readonly port: number;
  /** Upstream URL and version name per side (config router.*Upstream, versions.*). */
  readonly upstreams: Readonly<Record<Side, { readonly url: string; readonly version: string }>>;
  /** Pool size and timeouts towards the upstreams, as the proxy's (config proxy). */
  readonly forwarding: Pick<
    Config['proxy'],
    'connections' | 'connectTimeout' | 'headersTimeout' | 'bodyTimeout' | 'keepAliveTimeout' | 'clientHeadersTimeout'
  >;
  /** The canary's weight now, percent 0..100. */
  readonly weightPercent: () => number;
  readonly pick: VersionPicker;
  readonly logger: Logger;
}

export interface RouterServer {
  readonly server: Server;
  /** Traffic since start, per side. */
  routed(side: Side): RoutedVersion;
  /** Listens on host:port (port 0 picks a free one). */
  listen(): Promise<{ port: number; host: string }>;
  /**
   * Stops accepting, waits for requests under way (at most `drainMs`, then cuts them), closes the pools.
   * @param drainMs longest wait for requests under way, ms (default 10 000)
   */
  close(drainMs?: number): Promise<void>;
  /** Cuts every connection now. */
  destroy(): Promise<void>;
}

interface Lane {
  readonly version: string;
  readonly pool: Pool;
  requests: number;
  readonly failures: Record<RouterFailure, number>;
}

const isFailure = (outcome: string): outcome is RouterFailure => (ROUTER_FAILURES as readonly string[]).includes(outcome);

export function createRouterServer(options: RouterServerOptions): RouterServer {
  const { forwarding, logger } = options;
  const lane = (side: Side): Lane => ({
    version: options.upstreams[side].version,
    pool: new Pool(options.upstreams[side].url, {
      connections: forwarding.connections,
      pipelining: 1,
      connect: { timeout: forwarding.connectTimeout },
      headersTimeout: forwarding.headersTimeout,
      bodyTimeout: forwarding.bodyTimeout,
      keepAliveTimeout: forwarding.keepAliveTimeout,
    }),
    requests: 0,
    failures: { connect_error: 0, reset: 0, timeout: 0 },
  });
  const lanes: Record<Side, Lane> = { baseline: lane('baseline'), canary: lane('canary') };
  const active = new Set<ServerResponse>();
  let onIdle: (() => void) | null = null;

  const server = createServer(
    { requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: CLIENT_KEEP_ALIVE_MS, headersTimeout: forwarding.clientHeadersTimeout },
    (req, res) => {
      const side = options.pick(req.headers, options.weightPercent());
      const target = lanes[side];
      target.requests++;
      active.add(res);
      res.setHeader(VERSION_HEADER, target.version);
      // forwardRequest never rejects.
      void forwardRequest(target.pool, req, res).then((result) => {
        active.delete(res);
        if (isFailure(result.outcome)) {
          target.failures[result.outcome]++;
          logger.warn(
            { version: target.version, outcome: result.outcome, code: result.errorCode, status: result.status },
            'upstream failure',
          );
        }
        if (active.size === 0) onIdle?.();
      });
    },
  );
  server.on('error', (err) => logger.error({ err }, 'router server error'));

  const closePools = async (how: 'close' | 'destroy'): Promise<void> => {
    await Promise.all(Object.values(lanes).map((l) => (how === 'close' && !l.pool.destroyed ? l.pool.close() : l.pool.destroy())));
  };

  let closing: Promise<void> | null = null;
  const drainAndClose = async (drainMs: number): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve())); // stops accepting; idle connections close
    for (const res of active) if (!res.headersSent) res.setHeader('connection', 'close');
    if (active.size > 0) {
      await waitIdle((fn) => {
        onIdle = fn;
      }, drainMs);
      if (active.size > 0) logger.warn({ inFlight: active.size, drainMs }, 'router drain timed out; cutting the remaining requests');
    }
    server.closeAllConnections();
    await closed;
    await closePools('close');
  };

  return {
    server,
    routed: (side) => {
      const l = lanes[side];
      return { version: l.version, requests: l.requests, failures: { ...l.failures } };
    },
    listen: () => listenOn(server, options.port, options.host),
    close(drainMs = DEFAULT_DRAIN_MS) {
      closing ??= drainAndClose(drainMs);
      return closing;
    },
    async destroy() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await closePools('destroy');
    },
  };
}
