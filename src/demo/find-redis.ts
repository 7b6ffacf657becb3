/**
 * Finds a Redis for the demo: REDIS_URL if set, else 127.0.0.1:6379, else a private `redis-server` from PATH on a
 * free loopback port (no persistence; stopped with the demo). None of these: CanaryGateError CG_DEMO_NO_REDIS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createLogger } from '../config/logger.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';

export interface FoundRedis {
  readonly url: string;
  /** Where it came from, for the demo's first lines. */
  readonly origin: 'REDIS_URL' | 'local' | 'private redis-server';
  stop(): Promise<void>;
}

/** Resolves true when a PING answers within `timeoutMs`; false at once when the connection fails. */
export async function pings(url: string, timeoutMs = 1000): Promise<boolean> {
  const client = createRedisClient({ url, commandTimeout: timeoutMs, connectTimeout: timeoutMs }, createLogger('silent'));
  const failed = once(client, 'error').then(([err]) => Promise.reject(err as Error));
  try {
    await Promise.race([waitReady(client, timeoutMs), failed]);
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A free TCP port on 127.0.0.1 (listen on 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Starts `redis-server` (no persistence) on `port`, or a free one; resolves once it answers PING, rejects when it
 * cannot start. Tests that stop or restart Redis use it.
 */
export async function startRedisServer(
  extraArgs: readonly string[] = [],
  fixedPort?: number,
): Promise<{ url: string; port: number; process: ChildProcess; stop(): Promise<void> }> {
  const port = fixedPort ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = new Promise<never>((_, reject) => child.once('error', reject));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await Promise.race([pings(url, 300), failed]);
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    process: child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function findRedis(env: Readonly<Record<string, string | undefined>>): Promise<FoundRedis> {
  const nothing = async (): Promise<void> => undefined;
  if (env.REDIS_URL) {
    if (await pings(env.REDIS_URL)) return { url: env.REDIS_URL, origin: 'REDIS_URL', stop: nothing };
    throw new CanaryGateError(
      ErrorCodes.DEMO_NO_REDIS,
      `REDIS_URL=${env.REDIS_URL} does not answer PING; start that Redis or unset REDIS_URL`,
    );
  }
  const local = 'redis://127.0.0.1:6379';
  if (await pings(local)) return { url: local, origin: 'local', stop: nothing };
  try {
    const started = await startRedisServer();
    return { url: started.url, origin: 'private redis-server', stop: started.stop };
  } catch (err) {
    throw new CanaryGateError(
      ErrorCodes.DEMO_NO_REDIS,
      'no Redis found: REDIS_URL is unset, nothing answers on 127.0.0.1:6379, and redis-server is not on PATH. ' +
        'Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:port',
      { cause: err },
    );
  }
}
