/**
 * Sentinels that require a password (`requirepass` in sentinel.conf): with `redis.sentinelPassword` the client finds
 * the primary through them; without it the client never becomes ready and the sidecar serves requests all the same.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createRedisClient, waitReady, type Redis } from '../../src/fleet/redis-client.ts';
import { silent } from '../helpers/redis.ts';
import { startSentinel, type TestSentinel } from '../helpers/redis-ha.ts';

const PASSWORD = 'sentinel-secret-for-tests';
let setup: TestSentinel;
const clients: Redis[] = [];

beforeAll(async () => {
  setup = await startSentinel('cg-auth', PASSWORD);
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await setup?.stop();
});

function sentinelClient(sentinelPassword: string): Redis {
  const config = loadConfig({ env: { REDIS_URL: setup.url, CANARY_GATE_REDIS_SENTINEL_PASSWORD: sentinelPassword } });
  const c = createRedisClient({ ...config.redis, commandTimeout: 500, connectTimeout: 500 }, silent);
  clients.push(c);
  return c;
}

it('finds the primary through Sentinels that require a password, given redis.sentinelPassword', async () => {
  const c = sentinelClient(PASSWORD);
  await waitReady(c, 5000);
  await c.set('cg-auth-probe', '1');
  expect(await c.get('cg-auth-probe')).toBe('1');
});

it('stays unready without the password (the Sentinels refuse it), instead of reaching a server by other means', async () => {
  const c = sentinelClient('');
  await expect(waitReady(c, 1500)).rejects.toThrow(/not ready/);
});

it('refuses redis.sentinelPassword outside sentinel mode', () => {
  expect(() => loadConfig({ env: { CANARY_GATE_REDIS_SENTINEL_PASSWORD: 'x' } })).toThrow(
    expect.objectContaining({
      details: ['redis.sentinelPassword: is only read in sentinel mode (mode is standalone) (from CANARY_GATE_REDIS_SENTINEL_PASSWORD)'],
    }),
  );
});
