/**
 * The rollout controls on a real admin server: the bearer token (403 without one configured, 401 on a wrong one),
 * actor and reason required (400), a weight read by parseWeight (400 for anything but an integer 0..100), a refused
 * command answered 409 with the reason, and the audit entry carrying the actor with the caller's address.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serviceKeys } from '../../src/core/keys.ts';
import { rolloutStages } from '../../src/core/rollout-plan.ts';
import { createAdminServer, type AdminServer } from '../../src/metrics/admin-server.ts';
import { rolloutRoutes } from '../../src/rollout/admin-routes.ts';
import { RolloutControl } from '../../src/rollout/control.ts';
import { RedisRolloutStore } from '../../src/rollout/redis-rollout-store.ts';
import { client, dropService, silent, uniqueService } from '../helpers/redis.ts';

const TOKEN = 's3cret-token';
let redis: Redis;
beforeAll(async () => {
  redis = await client();
});
afterAll(() => redis.disconnect());
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(token: string | undefined) {
  const service = uniqueService('rollout-admin');
  const keys = serviceKeys('canary-gate', service);
  const flagKey = `feature:{${service}}:v2_traffic_percentage`;
  const store = new RedisRolloutStore(redis, keys, { flagKey, auditMaxLen: 100, latchKey: keys.decision });
  const control = new RolloutControl(store, rolloutStages([{ setWeight: 10 }, { setWeight: 50 }], 60_000));
  const admin: AdminServer = createAdminServer(
    { ready: () => true, status: () => ({}), metrics: (_q, r) => r.end(), routes: rolloutRoutes(control) },
    token,
    silent,
  );
  const { port } = await admin.listen(0, '127.0.0.1');
  cleanups.push(
    () => admin.close(),
    () => dropService(redis, 'canary-gate', service, flagKey),
  );
  const post = (path: string, body: unknown, auth = `Bearer ${TOKEN}`) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return { post, port, keys, flagKey };
}

const who = { actor: 'alice', reason: 'ticket 42' };

describe('rollout admin API', () => {
  it('answers 403 when no token is configured and 401 on a wrong one, and writes nothing', async () => {
    const off = await serve(undefined);
    expect((await off.post('/rollout/start', who)).status).toBe(403);
    const on = await serve(TOKEN);
    expect((await on.post('/rollout/start', who, 'Bearer wrong')).status).toBe(401);
    expect((await on.post('/rollout/start', who, '')).status).toBe(401);
    expect(await redis.get(on.flagKey)).toBeNull();
  });

  it.each([
    ['/rollout/start', {}, /actor is required/],
    ['/rollout/start', { actor: 'alice' }, /reason is required/],
    ['/rollout/start', { actor: '  ', reason: 'x' }, /actor is required/],
    ['/rollout/start', { actor: 'alice', reason: 7 }, /reason is required/],
    ['/rollout/start', 'not json', /body must be JSON/],
    ['/rollout/start', [1], /JSON object/],
    ['/rollout/pause', { ...who, full: true }, /unknown field full/],
    ['/rollout/promote', { ...who, weight: 1e308 }, /weight must be an integer percentage 0\.\.100/],
    ['/rollout/promote', { ...who, weight: 'NaN' }, /weight must be an integer percentage/],
    ['/rollout/promote', { ...who, weight: 101 }, /got 101/],
    ['/rollout/promote', { ...who, weight: 50, full: true }, /not both/],
    ['/rollout/promote', { ...who, full: 'yes' }, /full must be true or false/],
  ])('POST %s %j: 400', async (path, body, message) => {
    const s = await serve(TOKEN);
    const res = await s.post(path, body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
  });

  it('starts, refuses what does not apply with 409, promotes to a weight, and audits the actor with the caller', async () => {
    const s = await serve(TOKEN);
    const started = await s.post('/rollout/start', who);
    expect(started.status).toBe(200);
    expect(await started.json()).toEqual({ outcome: 'started', weight: 10, status: 'progressing', flag: 10 });
    expect(await redis.get(s.flagKey)).toBe('10');

    const again = await s.post('/rollout/start', who);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toMatch(/a rollout is progressing at 10 %/);
    expect((await s.post('/rollout/resume', who)).status).toBe(409);
    expect((await s.post('/rollout/promote', { ...who, weight: 30 })).status).toBe(409);

    const promoted = await s.post('/rollout/promote', { actor: 'bob', reason: 'canary is fine', weight: '50' });
    expect(await promoted.json()).toMatchObject({ outcome: 'promoted', weight: 50, flag: 50 });
    expect(await redis.get(s.flagKey)).toBe('50');

    const status = await fetch(`http://127.0.0.1:${s.port}/rollout/status`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ status: 'progressing', weight: 50, flag: '50', stage: 1, stages: 3 });

    const entries = await redis.xrange(s.keys.audit, '-', '+');
    const actors = entries.map(([, f]) => f[f.indexOf('actor') + 1]);
    expect(actors).toEqual(['alice@127.0.0.1', 'bob@127.0.0.1']);
  });
});
