/**
 * The upgrade warning of the per-service flag key, on a private redis-server (the machine's Redis may hold the old
 * global key for tests of branches that still use it): a sidecar on the default key warns at start-up when only the
 * old key is set, and stays quiet once its own key holds a value or when it is configured with the old key.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { LEGACY_FLAG_KEY } from '../../src/flag/legacy-flag.ts';
import { captureLogs, client } from '../helpers/redis.ts';

let server: Awaited<ReturnType<typeof startRedisServer>>;

beforeAll(async () => {
  server = await startRedisServer();
});

afterAll(async () => {
  await server?.stop();
});

/** Starts and destroys one sidecar of service `upgrade`; returns what it logged. */
async function startupLogs(env: Record<string, string> = {}): Promise<string> {
  const logs = captureLogs('warn');
  const config = loadConfig({
    env: {
      SERVICE_NAME: 'upgrade',
      REDIS_URL: server.url,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_EVALUATION_ENABLED: 'false',
      ...env,
    },
  });
  const sidecar = buildSidecar(config, { logger: logs.logger });
  await sidecar.start();
  await sidecar.destroy();
  return logs.text();
}

it('warns when the old global flag is set and the service flag is not, and not otherwise', async () => {
  const redis = await client(server.url);
  try {
    expect(await startupLogs()).not.toContain('per service since 0.2');
    await redis.set(LEGACY_FLAG_KEY, '10');
    const warned = await startupLogs();
    expect(warned).toContain(
      'the flag key is per service since 0.2: feature:v2_traffic_percentage is set and feature:{upgrade}:v2_traffic_percentage is not',
    );
    // Configured with the old key on purpose: nothing to say.
    expect(await startupLogs({ CANARY_GATE_FLAG_KEY: LEGACY_FLAG_KEY })).not.toContain('per service since 0.2');
    // Migrated: the service's own key holds the value.
    await redis.set('feature:{upgrade}:v2_traffic_percentage', '10');
    expect(await startupLogs()).not.toContain('per service since 0.2');
  } finally {
    redis.disconnect();
  }
});
