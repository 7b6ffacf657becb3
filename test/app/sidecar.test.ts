/**
 * Sidecars with real proxies, real upstreams and a real Redis: the fleet merges across pods of both versions, the
 * lease moves when its holder dies, a failing canary gets the flag written, and the latch survives a restart.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { buildSidecar } from '../../src/app/sidecar.ts';
import { client, dropService, eventually, silent, uniqueService } from '../helpers/redis.ts';
import { cleanups, configFor, fleet, holderOf, send, startPod, TOKEN, upstream } from '../helpers/sidecar-fleet.ts';

describe('a fleet of three sidecars', () => {
  it('merges the slots of both baseline pods and the canary pod into one judged window', async () => {
    const service = uniqueService('merge');
    const pods = await fleet(service);
    await Promise.all([send(pods[0]!.proxy, 30), send(pods[1]!.proxy, 20), send(pods[2]!.proxy, 25)]);
    const holder = await eventually(() => holderOf(pods), 5000, 'a lease holder');
    expect(pods.filter((p) => p.sidecar.status().evaluator.holding)).toHaveLength(1);
    const verdict = await eventually(
      () => {
        const v = holder.sidecar.status().latestVerdict;
        return v && v.baseline.requests === 50 && v.canary.requests === 25 ? v : undefined;
      },
      5000,
      'the merged window',
    );
    expect(verdict.baseline.pods).toBe(2);
    expect(verdict.canary.pods).toBe(1);
    expect(verdict.outcome).toBe('pass');
    for (const pod of pods) expect(pod.sidecar.status().evaluator.holder).toBe(holder.sidecar.status().evaluator.holder);
  });

  it('hands the lease to another sidecar within two lease periods when the holder dies', async () => {
    const service = uniqueService('lease');
    const pods = await fleet(service);
    const holder = await eventually(() => holderOf(pods), 5000, 'a lease holder');
    const token = holder.sidecar.status().evaluator.fencingToken;
    await holder.sidecar.destroy(); // a crash: the lease is not released
    const others = pods.filter((p) => p !== holder);
    const leaseTtlMs = holder.config.evaluation.leaseTtl;
    const next = await eventually(() => holderOf(others), 2 * leaseTtlMs + 500, 'a new holder');
    expect(next.sidecar.status().evaluator.fencingToken).toBeGreaterThan(token);
    await send(next.proxy, 25);
    await send(others.find((p) => p.config.pod.version === 'v2')!.proxy, 25);
    await eventually(
      () => ((next.sidecar.status().latestVerdict?.canary.requests ?? 0) >= 25 ? true : undefined),
      5000,
      'evaluations by the new holder',
    );
  });

  it('writes the flag when the canary fails, keeps the latch across a restart, and clears it only on reset', async () => {
    const service = uniqueService('latch');
    const pods = await fleet(service, 503);
    const redis = await client();
    cleanups.push(async () => redis.disconnect());
    const flagKey = `cg-test:flag:{${service}}`;
    await redis.set(flagKey, '10');
    await Promise.all([send(pods[0]!.proxy, 40), send(pods[2]!.proxy, 40)]);
    await eventually(async () => ((await redis.get(flagKey)) === '0' ? true : undefined), 10_000, 'the flag at 0');
    const decision = JSON.parse((await redis.get(`cg-test:{${service}}:decision`))!);
    expect(decision).toMatchObject({ state: 'rolled_back', trigger: 'automatic', consecutiveBreaches: 3 });
    expect(decision.checks.map((c: { check: string }) => c.check)).toEqual(
      expect.arrayContaining(['error_ratio_relative', 'error_ratio_absolute']),
    );

    // Restart the whole fleet: the new evaluator reads the latch and keeps it, whatever the traffic says now.
    for (const pod of pods) await pod.sidecar.close();
    await redis.set(flagKey, '10'); // someone fiddles with the flag; the latch still stands
    const healthy = await upstream();
    const restarted = [
      await startPod(configFor(service, 'a2', 'v1', healthy.url)),
      await startPod(configFor(service, 'c2', 'v2', healthy.url)),
    ];
    const holder = await eventually(() => holderOf(restarted), 5000, 'a lease holder after restart');
    await eventually(() => (holder.sidecar.status().state.phase === 'rolled_back' ? true : undefined), 5000, 'the latch read back');
    expect(holder.sidecar.status().latch).toMatchObject({ by: decision.by });

    // Only a reset clears it, and it needs the bearer token.
    const denied = await request(`${holder.admin}/reset`, { method: 'POST', body: '{}', headers: { authorization: 'Bearer wrong' } });
    expect(denied.statusCode).toBe(401);
    await denied.body.dump();
    const reset = await request(`${holder.admin}/reset`, {
      method: 'POST',
      body: JSON.stringify({ reason: 'v2.0.1 fixes it', flag: 5, actor: 'alice' }),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(reset.statusCode).toBe(200);
    await reset.body.dump();
    expect(await redis.get(flagKey)).toBe('5');
    await eventually(() => (holder.sidecar.status().state.phase === 'healthy' ? true : undefined), 3000, 'healthy after reset');
    const audit = await redis.xrange(`cg-test:{${service}}:audit`, '-', '+');
    expect(audit.map(([, f]) => f[1])).toEqual(['rollback', 'reset']);
    expect(audit[1]![1]).toEqual(expect.arrayContaining(['actor', expect.stringContaining('alice')]));
  });
});

describe('advisory mode', () => {
  it('records the would-be rollback under the dry-run key with its own event, and never touches the flag', async () => {
    const service = uniqueService('advisory');
    const pods = await fleet(service, 503, { CANARY_GATE_POLICY_ADVISORY: 'true' });
    const redis = await client();
    cleanups.push(async () => redis.disconnect());
    const flagKey = `cg-test:flag:{${service}}`;
    await redis.set(flagKey, '10');
    await Promise.all([send(pods[0]!.proxy, 40), send(pods[2]!.proxy, 40)]);
    const dryRun = await eventually(
      async () => (await redis.get(`cg-test:{${service}}:dry-run`)) ?? undefined,
      10_000,
      'the dry-run decision',
    );
    expect(JSON.parse(dryRun)).toMatchObject({
      state: 'rolled_back',
      trigger: 'automatic',
      consecutiveBreaches: 3,
      configHash: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(await redis.get(flagKey)).toBe('10');
    expect(await redis.get(`cg-test:{${service}}:decision`)).toBeNull();
    const audit = await redis.xrange(`cg-test:{${service}}:audit`, '-', '+');
    expect(audit.map(([, f]) => f[1])).toEqual(['dry_run_rollback']);
    const holder = holderOf(pods)!;
    expect(holder.sidecar.status()).toMatchObject({ advisory: true, state: { phase: 'rolled_back' }, latch: { trigger: 'automatic' } });
    // A reset clears the dry-run latch, and the flag still only changes when asked.
    const reset = await request(`${holder.admin}/reset`, {
      method: 'POST',
      body: JSON.stringify({ reason: 'measured', actor: 'alice' }),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(reset.statusCode).toBe(200);
    await reset.body.dump();
    expect(await redis.get(`cg-test:{${service}}:dry-run`)).toBeNull();
    expect(await redis.get(flagKey)).toBe('10');
  });
});

describe('a Redis that loses its data', () => {
  it('gets the latched decision written again by the evaluator, since no reset was recorded', async () => {
    const service = uniqueService('lost');
    const pods = await fleet(service, 500);
    const redis = await client();
    cleanups.push(async () => redis.disconnect());
    const flagKey = `cg-test:flag:{${service}}`;
    await Promise.all([send(pods[0]!.proxy, 30), send(pods[2]!.proxy, 30)]);
    await eventually(async () => ((await redis.get(flagKey)) === '0' ? true : undefined), 10_000, 'the first rollback');
    const first = await redis.get(`cg-test:{${service}}:decision`);

    // Every key of the service vanishes, as after a restart of a Redis without persistence.
    await dropService(redis, 'cg-test', service, flagKey);
    await eventually(async () => ((await redis.get(flagKey)) === '0' ? true : undefined), 10_000, 'the decision written again');
    expect(await redis.get(`cg-test:{${service}}:decision`)).toBe(first);
    const holder = holderOf(pods)!;
    expect(holder.sidecar.status().state.phase).toBe('rolled_back');
  });
});

describe('admin endpoints', () => {
  it('serves health, readiness, status and metrics, and refuses mutations without the configured token', async () => {
    const service = uniqueService('admin');
    const u = await upstream(500);
    const redis = await client();
    cleanups.push(async () => {
      await dropService(redis, 'cg-test', service, `cg-test:flag:{${service}}`);
      redis.disconnect();
    });
    const pod = await startPod(configFor(service, 'solo', 'v2', u.url, { CANARY_GATE_PROXY_ROUTES: '/users/:id,/item/:id' }));
    await send(pod.proxy, 7);
    const get = async (path: string) => {
      const res = await request(`${pod.admin}${path}`);
      return { status: res.statusCode, text: await res.body.text() };
    };
    expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect((await get('/readyz')).status).toBe(200);
    const status = JSON.parse((await get('/status')).text);
    expect(status).toMatchObject({ service, pod: 'solo', version: 'v2', role: 'canary', local: { requests: 7, errors: 7 } });
    const window = await eventually(
      async () => {
        const w = JSON.parse((await get('/status')).text).local.window;
        return w && w.requests === 7 ? w : undefined;
      },
      3000,
      "this pod's own window in /status",
    );
    expect(window).toMatchObject({ version: 'v2', errors: 7, errorRatio: 1, pods: 1 });
    const metrics = (await get('/metrics')).text;
    expect(metrics).toMatch(/canary_gate_proxy_requests_total\{service_version="v2"\} 7/);
    expect(metrics).toMatch(/canary_gate_proxy_errors_total\{service_version="v2"\} 7/);
    expect(metrics).toMatch(/^canary_gate_state 0$/m);
    // The three families: requests (semantic conventions), the gate's figures, the runtime.
    expect(metrics).toMatch(
      /^http_server_request_duration_count\{http_request_method="GET",service_version="v2",http_response_status_code="500",http_route="\/item\/:id"\} 7$/m,
    );
    expect(metrics).toMatch(/^http_server_request_duration_bucket\{[^}]*le="0\.005"\} \d+$/m);
    expect(metrics).toMatch(/^canary_gate_lease_holder [01]$/m);
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(metrics).toMatch(/^canary_gate_proxy_rejected_total\{reason="malformed"\} 0$/m);
    expect(metrics).toContain(`target_info{service_name="canary-gate",service_namespace="${service}",service_instance_id="solo"} 1`);
    expect((await get('/nowhere')).status).toBe(404);

    const disabled = buildSidecar(configFor(service, 'no-token', 'v1', u.url), { logger: silent, adminToken: '' });
    const { adminPort } = await disabled.start();
    cleanups.push(() => disabled.destroy());
    const res = await request(`http://127.0.0.1:${adminPort}/rollback`, {
      method: 'POST',
      body: '{}',
      headers: { authorization: 'Bearer ' },
    });
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toContain('CANARY_GATE_ADMIN_TOKEN');

    const manual = await request(`${pod.admin}/rollback`, {
      method: 'POST',
      body: JSON.stringify({ reason: 'pager says so' }),
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(manual.statusCode).toBe(200);
    expect(JSON.parse(await manual.body.text())).toMatchObject({ outcome: 'written' });
    expect(await redis.get(`cg-test:flag:{${service}}`)).toBe('0');
    expect(pod.sidecar.status().state.phase).toBe('rolled_back');
    expect((await get('/metrics')).text).toMatch(/^canary_gate_state 2$/m);
  });
});
