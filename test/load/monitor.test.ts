/** What a run watches fails soft: an unreachable Redis or sidecar is `undefined` in the timeline, never a failed run. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../../src/demo/find-redis.ts';
import { createFlagReader, createStatusPoller } from '../../src/load/monitor.ts';
import { parseProfile } from '../../src/load/profile.ts';
import { runProfile } from '../../src/load/run.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const figures = (version: string, p95Ms: number | null) => ({
  version,
  requests: 150,
  errors: 0,
  errorRatio: 0,
  p50Ms: 10,
  p95Ms,
  p99Ms: 30,
  requestsPerSecond: 15,
  pods: 1,
});

let admin: Upstream;
let silentAdmin: Upstream;
let app: Upstream;

beforeAll(async () => {
  let atMs = 1000;
  admin = await startUpstream((req, res) => {
    res.writeHead(req.url === '/status' ? 200 : 404, { 'content-type': 'application/json' });
    atMs += 1000;
    res.end(
      JSON.stringify({
        latestVerdict: { outcome: 'fail', atMs, checks: [], reason: 'x', baseline: figures('v1', 40), canary: figures('v2', null) },
      }),
    );
  });
  silentAdmin = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ latestVerdict: null }));
  });
  app = await startUpstream();
});

afterAll(async () => {
  await Promise.all([admin?.close(), silentAdmin?.close(), app?.close()]);
});

it("reduces the newest sidecar verdict to the gate's view, NaN as null", async () => {
  const poll = createStatusPoller([silentAdmin.url, admin.url]);
  const view = await poll();
  expect(view).toMatchObject({ outcome: 'fail', baseline: { version: 'v1', p95Ms: 40 }, canary: { version: 'v2', p95Ms: null } });
});

it('says null before any verdict and undefined when no sidecar answers', async () => {
  expect(await createStatusPoller([silentAdmin.url])()).toBeNull();
  expect(await createStatusPoller([`http://127.0.0.1:${await freePort()}`], 200)()).toBeUndefined();
});

it('reads undefined from a Redis that does not answer', async () => {
  const reader = createFlagReader(`redis://127.0.0.1:${await freePort()}`, 'k', 200);
  try {
    expect(await reader.read()).toBeUndefined();
  } finally {
    reader.close();
  }
});

it('completes a run whose Redis and sidecar are unreachable', async () => {
  const closed = await freePort();
  const profile = parseProfile(
    `name: blind\nconnections: 2\nrate: 10\nduration: 1s\nmonitor:\n  every: 500ms\n  sidecars: [http://127.0.0.1:${closed}]\n  redis: { url: "redis://127.0.0.1:${closed}", flagKey: f }\n`,
    'blind.yaml',
  );
  const result = await runProfile(profile, { target: app.url });
  expect(result.stopReason).toBe('completed');
  expect(result.totals.requests).toBeGreaterThan(0);
  expect(result.flag).toMatchObject({ key: 'f', first: undefined, last: undefined });
  expect(result.rollback).toBeNull();
  expect(result.timeline.length).toBeGreaterThan(0);
  expect(result.timeline.every((p) => 'flag' in p && p.flag === undefined && 'gate' in p && p.gate === undefined)).toBe(true);
});
