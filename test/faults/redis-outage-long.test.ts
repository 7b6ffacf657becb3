/**
 * Redis stopped (SIGTERM) for 20 s under continuous load, then restarted on the same port with its data (append-only
 * file): no proxied request fails because of it; sealed slots wait in a buffer bounded by window.publishBuffer and are
 * published once Redis is back; with policy.noData.redisUnreachable = rollback the evaluator decides a rollback during
 * the outage, keeps it pending while its lease lapses, re-acquires the lease after the restart and writes the decision
 * exactly once (one rollback entry in the audit stream, still one after several more evaluations).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { parseDecision } from '../../src/flag/redis-flag-store.ts';
import { eventually, silent, sleep } from '../helpers/redis.ts';
import { startLoad, startPersistentRedis, startSoakApp, type LoadTarget, type PersistentRedis, type SoakApp } from '../soak/soak.ts';

const OUTAGE_MS = 20_000;
const PUBLISH_BUFFER = 10;
const SERVICE = `outage-long-${process.pid}`;
const FLAG_KEY = `feature:{${SERVICE}}:v2_traffic_percentage`;
const keys = serviceKeys('canary-gate', SERVICE);

let redis: PersistentRedis;
let app: SoakApp;
const sidecars: Sidecar[] = [];
const targets: LoadTarget[] = [];

beforeAll(async () => {
  redis = await startPersistentRedis();
  app = await startSoakApp();
  // One evaluator (a): the test is about its pending decision across the lapse of its own lease.
  for (const [pod, version, evaluates] of [
    ['a', 'v1', true],
    ['b', 'v1', false],
    ['c', 'v2', false],
  ] as const) {
    const config = loadConfig({
      env: {
        SERVICE_NAME: SERVICE,
        POD_NAME: pod,
        POD_VERSION: version,
        UPSTREAM_URL: app.upstream.url,
        REDIS_URL: redis.url,
        PROXY_PORT: '0',
        ADMIN_PORT: '0',
        CANARY_GATE_PROXY_HOST: '127.0.0.1',
        CANARY_GATE_ADMIN_HOST: '127.0.0.1',
        CANARY_GATE_WINDOW_SLOT: '1s',
        CANARY_GATE_WINDOW_SLOTS: '30',
        CANARY_GATE_WINDOW_PUBLISH_BUFFER: String(PUBLISH_BUFFER),
        CANARY_GATE_EVALUATION_ENABLED: String(evaluates),
        CANARY_GATE_EVALUATION_DELAY: '200ms',
        CANARY_GATE_EVALUATION_LEASE_TTL: '6s',
        CANARY_GATE_REDIS_COMMAND_TIMEOUT: '500ms',
        CANARY_GATE_REDIS_CONNECT_TIMEOUT: '500ms',
        CANARY_GATE_POLICY_MIN_SAMPLES: '10',
        CANARY_GATE_POLICY_NO_DATA_REDIS_UNREACHABLE: 'rollback',
      },
    });
    const sidecar = buildSidecar(config, { logger: silent });
    sidecars.push(sidecar);
    targets.push({ name: pod, url: `http://127.0.0.1:${(await sidecar.start()).proxyPort}`, active: true, inFlight: 0 });
  }
});

afterAll(async () => {
  for (const s of sidecars) await s.destroy();
  await app?.close();
  await redis?.destroy();
});

it('serves every request through a 20 s Redis outage, buffers slots within bounds, and writes the rollback decided meanwhile exactly once', async () => {
  const evaluator = sidecars[0]!;
  const load = startLoad({ targets, ratePerSec: 150, maxInFlight: 100, injected: [app.injected] });
  let bufferedMax = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      bufferedMax = Math.max(bufferedMax, ...sidecars.map((s) => s.status().publish.buffered));
      await sleep(50);
    }
  })();
  try {
    // pass, or warn: the app's /error route (1 % of the mix) is above policy.errors.warnRatio on both versions.
    const judged = (): boolean => ['pass', 'warn'].includes(evaluator.status().latestVerdict?.outcome ?? '');
    await eventually(() => (judged() ? true : undefined), 15_000, 'a passing evaluation before the outage');
    const tokenBefore = evaluator.status().evaluator.fencingToken;
    const sentBefore = load.counts.sent;

    const stoppedMs = Date.now();
    await redis.stop('SIGTERM');
    const pending = await eventually(() => evaluator.status().pendingDecision ?? undefined, 10_000, 'a rollback decided during the outage');
    const decidedS = (Date.now() - stoppedMs) / 1000;
    await sleep(stoppedMs + OUTAGE_MS - Date.now());
    // The lease (6 s) has lapsed: nothing could renew it; the decision is still pending.
    expect(evaluator.status().evaluator.holding).toBe(false);
    expect(evaluator.status().pendingDecision).toEqual(pending);
    const sentDuring = load.counts.sent - sentBefore;

    await redis.restart();
    const restartedMs = Date.now();
    const check = new Redis(redis.url);
    try {
      await eventually(async () => ((await check.get(FLAG_KEY)) === '0' ? true : undefined), 15_000, 'the flag written after the restart');
      const writtenS = (Date.now() - restartedMs) / 1000;
      await eventually(() => (sidecars.every((s) => s.status().publish.buffered === 0) ? true : undefined), 15_000, 'every buffer drained');
      const drainedS = (Date.now() - restartedMs) / 1000;
      // Several more evaluations (1 s slots): the latched decision is not written again.
      const evaluations = (): number => Object.values(evaluator.status().evaluator.evaluations).reduce((a, b) => a + b, 0);
      const after = evaluations();
      await eventually(() => (evaluations() >= after + 4 ? true : undefined), 15_000, 'four more evaluations');

      const audit = await check.xrange(keys.audit, '-', '+');
      const rollbacks = audit.filter(([, f]) => f[1] === 'rollback');
      const decision = parseDecision((await check.get(keys.decision)) ?? '');
      const counts = await load.stop();
      const dropped = sidecars.map((s) => s.status().publish.dropped);
      console.log(
        `redis down ${OUTAGE_MS / 1000} s: requests sent ${counts.sent} (${sentDuring} during the outage), ok ${counts.ok}, failed ${JSON.stringify(counts.failed)}; ` +
          `rollback decided ${decidedS.toFixed(1)} s into the outage, flag written ${writtenS.toFixed(2)} s after Redis was back, buffers drained after ${drainedS.toFixed(2)} s; ` +
          `buffered max ${bufferedMax} (bound ${PUBLISH_BUFFER}), dropped per sidecar ${dropped.join('/')}; rollback entries in the audit stream ${rollbacks.length}; ` +
          `fencing token ${tokenBefore} -> ${evaluator.status().evaluator.fencingToken}`,
      );
      expect(counts.failed).toEqual({});
      expect(counts.ok).toBe(counts.sent);
      expect(sentDuring).toBeGreaterThan(1000);
      expect(bufferedMax).toBeLessThanOrEqual(PUBLISH_BUFFER);
      expect(bufferedMax).toBe(PUBLISH_BUFFER); // the bound was reached: 20 slots sealed while Redis was down
      expect(Math.min(...dropped)).toBeGreaterThan(0);
      expect(rollbacks).toHaveLength(1);
      expect(decision).toMatchObject({ atMs: pending.atMs, by: 'a', trigger: 'automatic' });
      expect(evaluator.status().pendingDecision).toBeNull();
      expect(evaluator.status().evaluator.fencingToken).toBeGreaterThan(tokenBefore);
    } finally {
      check.disconnect();
    }
  } finally {
    sampling = false;
    await sampler;
    await load.stop();
  }
}, 120_000);
