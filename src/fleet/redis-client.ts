/**
 * The Redis client, set up to fail fast so nothing ever waits behind a dead Redis (ARCHITECTURE.md, "Fail open on the
 * traffic path"): no offline queue (commands reject at once while disconnected), one retry per command at most,
 * a command timeout, and reconnection forever with a backoff capped at 1 s.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../config/logger.ts';

export type { Redis };

export interface RedisClientOptions {
  /** redis:// or rediss:// URL; user, password and database are taken from it. */
  readonly url: string;
  /** Per-command timeout, ms. */
  readonly commandTimeout: number;
  /** Connect timeout, ms. */
  readonly connectTimeout: number;
}

/** A connected-or-connecting client. Errors are logged (once per distinct message in a row) and never thrown. */
export function createRedisClient(options: RedisClientOptions, logger: Logger): Redis {
  const client = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeout,
    connectTimeout: options.connectTimeout,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 5), 1000),
    lazyConnect: false,
  });
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
