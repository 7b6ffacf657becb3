/** Test helpers for a real Redis: the machine's 127.0.0.1:6379 (or REDIS_URL), and unique service names per test. */
import { randomBytes } from 'node:crypto';
import type { Redis as IORedis } from 'ioredis';
import type { Redis } from '../../src/fleet/redis-client.ts';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/config/logger.ts';
import { createRedisClient } from '../../src/fleet/redis-client.ts';
import { waitReady } from '../../src/fleet/redis-client.ts';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const silent = createLogger('silent');

/** A logger (pino, JSON lines) writing into a string, to check what the logs contain. */
export function captureLogs(level = 'info'): { logger: Logger; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { logger: createLogger(level, {}, sink), text: () => text };
}

/** A fresh service name, so tests sharing one Redis never see each other's keys. */
export function uniqueService(label = 't'): string {
  return `${label}-${randomBytes(5).toString('hex')}`;
}

/** A fail-fast client as the sidecar builds it, ready. A standalone URL makes a single server's client. */
export async function client(url = REDIS_URL): Promise<IORedis> {
  const redis = createRedisClient({ url, commandTimeout: 1000, connectTimeout: 1000 }, silent);
  await waitReady(redis, 3000);
  return redis as IORedis;
}

/** Deletes every key of a service (cleanup). */
export async function dropService(redis: Redis, prefix: string, service: string, flagKey?: string): Promise<void> {
  const keys = await redis.keys(`${prefix}:{${service}}:*`);
  if (flagKey) keys.push(flagKey);
  if (keys.length > 0) await redis.del(...keys);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 25 ms until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}
