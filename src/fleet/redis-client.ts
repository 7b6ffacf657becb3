/**
 * The Redis client, set up to fail fast so nothing ever waits behind a dead Redis (ARCHITECTURE.md, "Fail open on the
 * traffic path"): no offline queue (commands reject at once while disconnected), one retry per command at most,
 * a command timeout, and reconnection forever with a backoff capped at 1 s.
 *
 * Three ways to reach Redis (config redis.mode, read by src/config/redis-target.ts), all through ioredis' own support:
 * - standalone: `new Redis(url)`;
 * - cluster: ioredis `Cluster` from seed nodes; it follows MOVED/ASK redirections and refreshes the slot map after a
 *   failover. Every key of one service carries the `{service}` hash tag, so each pipeline, MULTI and Lua script of
 *   the stores runs on one node (the flag key too: config checks its hash tag in cluster mode);
 * - sentinel: `new Redis({ sentinels, name })`; the client asks the Sentinels for the primary on every (re)connect,
 *   refuses a server whose role is not master, and drops the connection when a Sentinel announces `+switch-master`
 *   (ioredis `failoverDetector`), so a failover costs a reconnect, not a wait for the old primary's TCP timeout.
 */
import { Cluster, Redis as IORedis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '../config/logger.ts';
import { readRedisTarget, type RedisMode } from '../config/redis-target.ts';

/** A client of any mode: a single server's (standalone, sentinel) or a Cluster's. Both have the same commands. */
export type Redis = IORedis | Cluster;

export interface RedisClientOptions {
  /** redis://, rediss://, redis+sentinel:// URL; user, password and database are taken from it. */
  readonly url: string;
  /** `standalone` (the default), `cluster` or `sentinel` (config redis.mode). */
  readonly mode?: RedisMode;
  /** Cluster seed nodes or Sentinels, `host:port`; empty or absent: the hosts of `url`. */
  readonly nodes?: readonly string[];
  /** Sentinel mode: the primary's name at the Sentinels; empty or absent: the path of a redis+sentinel:// URL. */
  readonly masterName?: string;
  /** Sentinel mode: the Sentinels' own password; empty or absent: none. */
  readonly sentinelPassword?: string;
  /** Per-command timeout, ms. */
  readonly commandTimeout: number;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
}

/** Reconnection backoff, ms: 100, 200, 400, 800, then 1000 forever. */
const backoff = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 5), 1000);

/**
 * A connected-or-connecting client. Errors are logged (once per distinct message in a row) and never thrown.
 * @throws Error when the options do not describe a Redis (a config the loader validated never does)
 */
export function createRedisClient(options: RedisClientOptions, logger: Logger): Redis {
  const target = readRedisTarget({
    mode: options.mode ?? 'standalone',
    url: options.url,
    nodes: options.nodes ?? [],
    masterName: options.masterName ?? '',
    sentinelPassword: options.sentinelPassword ?? '',
  });
  if (Array.isArray(target)) throw new Error(`redis: ${target.map((p) => `${p.path}: ${p.reason}`).join('; ')}`);
  const failFast = {
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeout,
    connectTimeout: options.connectTimeout,
  } satisfies RedisOptions;
  const auth = { username: target.username, password: target.password };
  let client: Redis;
  if (target.mode === 'cluster') {
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      clusterRetryStrategy: backoff,
      // A node that is down or failing over: retry the command on the refreshed slot map within the command timeout.
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      slotsRefreshTimeout: options.connectTimeout,
      lazyConnect: false,
      redisOptions: { ...failFast, ...auth, ...(target.tls ? { tls: {} } : {}) },
    };
    client = new Cluster(
      target.nodes.map((n) => ({ host: n.host, port: n.port })),
      clusterOptions,
    );
  } else if (target.mode === 'sentinel') {
    client = new IORedis({
      ...failFast,
      ...auth,
      sentinels: target.nodes.map((n) => ({ host: n.host, port: n.port })),
      name: target.masterName,
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      db: target.db,
      enableOfflineQueue: false,
      retryStrategy: backoff,
      sentinelRetryStrategy: backoff,
      failoverDetector: true,
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      lazyConnect: false,
    });
  } else {
    client = new IORedis(options.url, { ...failFast, enableOfflineQueue: false, retryStrategy: backoff, lazyConnect: false });
  }
  let last = '';
  client.on('error', (err: Error) => {
    if (err.message !== last) logger.warn({ err: err.message }, 'redis error');
    last = err.message;
  });
  client.on('ready', () => {
    if (last !== '') logger.info('redis connection ready');
    last = '';
  });
  return client;
}

/** Resolves when the client is ready, or rejects after `timeoutMs`. Does not close the client. */
export function waitReady(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis not ready after ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
