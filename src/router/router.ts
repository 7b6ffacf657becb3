/**
 * Composition of `canary-gate route`: `buildRouter(config, deps)` wires the weight source (the flag, its events and
 * its poll, on two Redis clients), the version picker, the router's HTTP server and its admin server (/metrics,
 * /status, /healthz, /readyz), and returns `{ start, close, destroy, status }`. Nothing here touches argv, the
 * environment, signals or exit codes: the CLI does.
 *
 * The router never waits on Redis: requests are routed by the weight in memory, and a Redis that is away only makes
 * that weight stale (weight-source.ts).
 */
import type { Logger } from '../config/logger.ts';
import { createLogger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { serviceKeys } from '../core/keys.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { createAdminServer } from '../metrics/admin-server.ts';
import { createRouterMetrics, type RoutedVersion } from '../metrics/router-metrics.ts';
import { createRouterServer } from './router-server.ts';
import { createVersionPicker } from './version-picker.ts';
import { WeightSource, type WeightSourceStatus } from './weight-source.ts';

export interface RouterDeps {
  readonly logger?: Logger;
  /** Wall clock, ms since the epoch. Default Date.now. */
  readonly clock?: () => number;
  /** Uniform draw in [0, 1) for requests without a sticky key. Default Math.random. */
  readonly random?: () => number;
}

export interface RouterStatus extends WeightSourceStatus {
  readonly service: string;
  /** The flag key and the event channel the router follows. */
  readonly flag: string;
  readonly channel: string;
  readonly baseline: RoutedVersion & { readonly upstream: string };
  readonly canary: RoutedVersion & { readonly upstream: string };
  readonly sticky: { readonly header: string; readonly cookie: string };
  /** redis.mode (standalone, cluster or sentinel) and the client's state. */
  readonly redis: { readonly mode: string; readonly connection: string };
}

export interface Router {
  /** Reads the flag once (Redis given one connect timeout), then listens on the router and admin ports (0 picks free ones). */
  start(): Promise<{ port: number; adminPort: number }>;
  /** Drains: stops accepting, finishes requests under way, stops following the flag. */
  close(): Promise<void>;
  /** Stops at once. */
  destroy(): Promise<void>;
  status(): RouterStatus;
}

export function buildRouter(config: Config, deps: RouterDeps = {}): Router {
  const r = config.router;
  const logger = deps.logger ?? createLogger(config.log.level, { service: config.service, router: config.pod.name });
  const keys = serviceKeys(config.redis.keyPrefix, config.service);
  const redis = createRedisClient(config.redis, logger);
  const subscriber = createRedisClient(config.redis, logger);
  const weights = new WeightSource({
    flags: new RedisFlagStore(redis, keys, flagOptionsOf(config.flag)),
    subscriber,
    channel: keys.events,
    pollMs: r.pollInterval,
    logger,
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  const server = createRouterServer({
    host: r.host,
    port: r.port,
    upstreams: {
      baseline: { url: r.baselineUpstream, version: config.versions.baseline },
      canary: { url: r.canaryUpstream, version: config.versions.canary },
    },
    forwarding: config.proxy,
    weightPercent: () => weights.weightPercent,
    pick: createVersionPicker({
      stickyHeader: r.stickyHeader,
      stickyCookie: r.stickyCookie,
      salt: config.flag.key,
      ...(deps.random ? { random: deps.random } : {}),
    }),
    logger,
  });
  let accepting = false;

  const status = (): RouterStatus => ({
    service: config.service,
    flag: config.flag.key,
    channel: keys.events,
    ...weights.status(),
    baseline: { ...server.routed('baseline'), upstream: r.baselineUpstream },
    canary: { ...server.routed('canary'), upstream: r.canaryUpstream },
    sticky: { header: r.stickyHeader, cookie: r.stickyCookie },
    redis: { mode: config.redis.mode, connection: redis.status },
  });

  const metrics = createRouterMetrics(
    () => {
      const w = weights.status();
      return {
        weightPercent: w.weightPercent,
        stale: w.stale,
        reads: w.reads,
        readFailures: w.readFailures,
        baseline: server.routed('baseline'),
        canary: server.routed('canary'),
      };
    },
    { service: config.service, instance: config.pod.name },
  );
  // No rollback or reset here: the router only follows the flag (both POST routes answer 404).
  const admin = createAdminServer({ ready: () => accepting, status, metrics: (req, res) => metrics.handle(req, res) }, undefined, logger);

  const release = async (): Promise<void> => {
    weights.stop();
    await metrics.shutdown().catch(() => undefined);
    redis.disconnect();
    subscriber.disconnect();
  };

  return {
    status,
    async start() {
      await waitReady(redis, config.redis.connectTimeout).catch((err: Error) =>
        logger.warn({ err: err.message }, 'starting without redis: every request to the baseline until the flag is read'),
      );
      await weights.start();
      const adminAddress = await admin.listen(r.adminPort, r.adminHost);
      const address = await server.listen();
      accepting = true;
      logger.info(
        {
          listen: address,
          admin: adminAddress,
          baseline: r.baselineUpstream,
          canary: r.canaryUpstream,
          weightPercent: weights.weightPercent,
        },
        'canary-gate router started',
      );
      return { port: address.port, adminPort: adminAddress.port };
    },
    async close() {
      accepting = false;
      await server.close();
      await admin.close();
      const s = status();
      logger.info({ baseline: s.baseline.requests, canary: s.canary.requests }, 'canary-gate router closed');
      await release();
    },
    async destroy() {
      accepting = false;
      await Promise.allSettled([server.destroy(), admin.close()]);
      await release();
    },
  };
}
