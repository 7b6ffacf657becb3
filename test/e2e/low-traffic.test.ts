/**
 * Detection at low traffic, end to end: two real sidecars (one baseline pod, one canary pod) with the default
 * sequential policy, a real Redis, real upstreams, and an open-loop client at 100 rps routing 95 to the baseline and
 * 5 to the canary. Both apps answer 0.5 % of requests with 500; after 10 s the canary's rate goes to 5 % (10x). The
 * gate must roll it back; the time it took is printed (the benchmark measures it, bench/decision-quality.ts), not
 * asserted. Before the change, the same fleet must not roll back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { client, dropService, REDIS_URL, silent, sleep, uniqueService } from '../helpers/redis.ts';
import { startUpstream } from '../helpers/upstream.ts';

const service = uniqueService('lowtraffic');
const flagKey = `cg-e2e:flag:{${service}}`;
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

const failing = (errorRatio: () => number) => (_req: IncomingMessage, res: ServerResponse) => {
  setTimeout(() => res.writeHead(Math.random() < errorRatio() ? 500 : 200).end('x'), 1);
};

describe('low traffic, end to end', () => {
  it('rolls back a 10x error regression of a canary at 5 rps (5 % of 100 rps) with the default policy', async () => {
    let canaryErrors = 0.005;
    const baselineApp = await startUpstream(failing(() => 0.005));
    const canaryApp = await startUpstream(failing(() => canaryErrors));
    cleanups.push(
      () => baselineApp.close(),
      () => canaryApp.close(),
    );
    const redis = await client();
    cleanups.push(async () => {
      await dropService(redis, 'cg-e2e', service, flagKey);
      redis.disconnect();
    });
    await redis.set(flagKey, '5');
    const proxies: string[] = [];
    for (const [pod, version, upstream] of [
      ['base-a', 'v1', baselineApp.url],
      ['canary-a', 'v2', canaryApp.url],
    ] as const) {
      const config = loadConfig({
        env: {
          SERVICE_NAME: service,
          POD_NAME: pod,
          POD_VERSION: version,
          UPSTREAM_URL: upstream,
          REDIS_URL,
          PROXY_PORT: '0',
          ADMIN_PORT: '0',
          CANARY_GATE_PROXY_HOST: '127.0.0.1',
          CANARY_GATE_ADMIN_HOST: '127.0.0.1',
          CANARY_GATE_REDIS_KEY_PREFIX: 'cg-e2e',
          CANARY_GATE_FLAG_KEY: flagKey,
          CANARY_GATE_WINDOW_SLOT: '1s',
          CANARY_GATE_EVALUATION_DELAY: '200ms',
          CANARY_GATE_EVALUATION_LEASE_TTL: '3s',
          CANARY_GATE_LOG_LEVEL: 'silent',
        },
      });
      const sidecar = buildSidecar(config, { logger: silent, adminToken: '' });
      const { proxyPort } = await sidecar.start();
      cleanups.push(() => sidecar.destroy());
      proxies.push(`http://127.0.0.1:${proxyPort}`);
    }

    // Open loop: one request every 10 ms, every 20th to the canary, until the flag falls or 240 s pass.
    const startedMs = Date.now();
    let changedMs = 0;
    let rolledBackMs = 0;
    let sent = 0;
    const inFlight = new Set<Promise<void>>();
    while (Date.now() - startedMs < 240_000) {
      const dueMs = startedMs + sent * 10;
      if (dueMs > Date.now()) await sleep(dueMs - Date.now());
      const target = proxies[sent % 20 === 0 ? 1 : 0]!;
      const p: Promise<void> = request(`${target}/orders/${sent}`)
        .then((r) => r.body.dump())
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      sent++;
      if (changedMs === 0 && Date.now() - startedMs >= 10_000) {
        expect(await redis.get(flagKey)).toBe('5');
        canaryErrors = 0.05;
        changedMs = Date.now();
      }
      if (sent % 50 === 0 && (await redis.get(flagKey)) === '0') {
        rolledBackMs = Date.now();
        break;
      }
    }
    await Promise.all(inFlight);
    const decision = JSON.parse((await redis.get(`cg-e2e:{${service}}:decision`)) ?? 'null');
    console.log(
      `[low-traffic e2e] ${sent} requests; rollback ${rolledBackMs > 0 ? `${((rolledBackMs - changedMs) / 1000).toFixed(1)} s after the change` : 'never'}: ${decision?.reason ?? '-'}`,
    );
    expect(rolledBackMs).toBeGreaterThan(changedMs);
    expect(decision).toMatchObject({ state: 'rolled_back', trigger: 'automatic' });
    expect(decision.checks.find((c: { check: string }) => c.check === 'error_ratio_relative')).toMatchObject({
      outcome: 'fail',
      evidence: { method: 'cusum' },
    });
  }, 300_000);
});
