/**
 * Redis replicates asynchronously: a rollback the primary acknowledged can die with it before its replica has it.
 * Here the replica is paused (SIGSTOP) and its replication link dropped while the gate rolls back, then the primary is killed and the paused replica,
 * resumed, is promoted without the decision. The gate writes the decision again on the new primary (its latch
 * vanished without a reset), so the flag ends at 0 with one rollback in the surviving audit stream, and no proxied
 * request fails meanwhile.
 */
import { Redis as IORedis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serviceKeys } from '../../src/core/keys.ts';
import { createRedisClient, waitReady, type Redis } from '../../src/fleet/redis-client.ts';
import { eventually, silent, uniqueService } from '../helpers/redis.ts';
import { startSentinel, type TestSentinel } from '../helpers/redis-ha.ts';
import { passingVerdict, startHaFleet, startLoad, type HaFleet } from './ha-fleet.ts';

let setup: TestSentinel;
let fleet: HaFleet | undefined;
let redis: Redis | undefined;

beforeAll(async () => {
  setup = await startSentinel();
}, 30_000);

afterAll(async () => {
  setup?.replica.server.process.kill('SIGCONT');
  await fleet?.stop();
  redis?.disconnect();
  await setup?.stop();
});

it('writes the rollback again on a promoted replica that never received it, once', async () => {
  const service = uniqueService('ha-lost');
  fleet = await startHaFleet(service, { REDIS_URL: setup.url });
  redis = createRedisClient({ url: setup.url, commandTimeout: 1000, connectTimeout: 1000 }, silent);
  await waitReady(redis, 5000);
  const keys = serviceKeys('canary-gate', service);
  await redis.set(fleet.config.flag.key, '30');
  const load = startLoad(fleet.proxies);
  try {
    await passingVerdict(fleet);

    // The replica stops, and the primary drops its replication link: the gate rolls back on the primary alone.
    setup.replica.server.process.kill('SIGSTOP');
    const direct = new IORedis(setup.primary.port, '127.0.0.1');
    await direct.call('CLIENT', 'KILL', 'TYPE', 'replica');
    direct.disconnect();
    fleet.canaryApp.handle((_req, res) => {
      res.writeHead(500);
      res.end('boom');
    });
    await eventually(
      async () => ((await redis!.get(fleet!.config.flag.key)) === '0' ? true : undefined),
      15_000,
      'the rollback on the primary',
    );
    const before = load.statuses.length;
    const killedMs = Date.now();
    await setup.primary.kill();
    setup.replica.server.process.kill('SIGCONT');
    await eventually(async () => ((await setup.primaryPort()) === setup.replica.port ? true : undefined), 20_000, 'the replica promoted');

    // The promoted replica lacked the decision; the gate writes it there.
    await eventually(
      async () => ((await redis!.get(fleet!.config.flag.key).catch(() => null)) === '0' ? true : undefined),
      20_000,
      'the rollback again',
    );
    const rewrittenS = (Date.now() - killedMs) / 1000;
    const statuses = (await load.stop()).slice(before);
    const audit = await redis.xrange(keys.audit, '-', '+');
    const rollbacks = audit.filter(([, fields]) => fields[fields.indexOf('event') + 1] === 'rollback');
    // Requests to the failing canary answer 500 from its app; the proxies themselves failed none (0: no answer; 502-504: the proxy's own).
    const proxyFailures = statuses.filter((s) => s === 0 || (s >= 502 && s <= 504)).length;
    console.log(
      `sentinel, decision lost with the primary: written again ${rewrittenS.toFixed(2)} s after the kill; ${statuses.length} requests meanwhile, ${proxyFailures} failed at the proxy; rollbacks in the new primary's audit stream: ${rollbacks.length}`,
    );
    expect(proxyFailures).toBe(0);
    expect(rollbacks).toHaveLength(1);
    // Written twice by the gate: once on the primary that died with it, once on the promoted replica.
    expect(fleet.evaluations.filter((e) => e.event.decisionWritten !== null)).toHaveLength(2);
    expect(await redis.get(keys.decision)).not.toBeNull();
  } finally {
    await load.stop();
  }
}, 55_000);
