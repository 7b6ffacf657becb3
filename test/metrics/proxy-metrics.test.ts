/**
 * What a sidecar exports about its own saturation and its clients, end to end (a real app, a real sidecar, a real
 * Redis): a request turned away after proxy.queueTimeout is counted in canary_gate_proxy_rejected_total
 * {reason="overloaded"} and in canary_gate_proxy_queue_wait_seconds, reported with error_type="overloaded" in
 * http.server.request.duration, and kept out of the slot the gate judges; a slow body is counted as body_timeout.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, type Sidecar } from '../../src/app/sidecar.ts';
import { loadConfig } from '../../src/config/load.ts';
import { eventually, REDIS_URL, silent, uniqueService } from '../helpers/redis.ts';
import { trickleUpload } from '../helpers/slow-clients.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

let app: Upstream;
let sidecar: Sidecar;
let proxyPort = 0;
let admin = '';
const held: Array<() => void> = [];

beforeAll(async () => {
  app = await startUpstream((req, res) => {
    req.resume();
    if (req.url === '/hold') held.push(() => res.end('released'));
    else req.once('end', () => res.end('ok'));
  });
  const config = loadConfig({
    env: {
      SERVICE_NAME: uniqueService('proxy-metrics'),
      POD_NAME: 'a',
      POD_VERSION: 'v2',
      UPSTREAM_URL: app.url,
      REDIS_URL,
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      CANARY_GATE_PROXY_HOST: '127.0.0.1',
      CANARY_GATE_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_REDIS_KEY_PREFIX: 'cg-test',
      CANARY_GATE_WINDOW_SLOT: '250ms',
      CANARY_GATE_EVALUATION_DELAY: '100ms',
      CANARY_GATE_PROXY_CONNECTIONS: '1',
      CANARY_GATE_PROXY_QUEUE_TIMEOUT: '150ms',
      CANARY_GATE_PROXY_CLIENT_BODY_TIMEOUT: '200ms',
      CANARY_GATE_EVALUATION_ENABLED: 'false',
      CANARY_GATE_LOG_LEVEL: 'silent',
    },
  });
  sidecar = buildSidecar(config, { logger: silent, adminToken: '' });
  const ports = await sidecar.start();
  proxyPort = ports.proxyPort;
  admin = `http://127.0.0.1:${ports.adminPort}`;
});

afterAll(async () => {
  await sidecar.destroy();
  await app.close();
});

const metrics = async (): Promise<string> => (await request(`${admin}/metrics`)).body.text();

describe("the proxy's saturation and rejections in /metrics", () => {
  it('counts an overloaded request and its queue wait, labels it, and keeps it out of the judged slot', async () => {
    const holding = request(`http://127.0.0.1:${proxyPort}/hold`).then((res) => res.body.text());
    await eventually(() => (held.length === 1 ? true : undefined), 5000, 'the held request at the app');
    const turnedAway = await request(`http://127.0.0.1:${proxyPort}/queued`);
    expect(turnedAway.statusCode).toBe(503);
    expect(turnedAway.headers['x-canary-gate-error']).toBe('overloaded');
    await turnedAway.body.dump();
    held[0]!();
    expect(await holding).toBe('released');

    const text = await metrics();
    expect(text).toMatch(/^canary_gate_proxy_rejected_total\{reason="overloaded"\} 1$/m);
    expect(text).toMatch(/^canary_gate_proxy_rejected_total\{reason="body_timeout"\} 0$/m);
    expect(text).toMatch(/^canary_gate_proxy_queue_wait_seconds_count\{service_version="v2"\} 1$/m);
    expect(text).toMatch(/^canary_gate_proxy_queue_wait_seconds_bucket\{service_version="v2",le="0\.1"\} 0$/m);
    expect(text).toMatch(/^canary_gate_proxy_queue_wait_seconds_bucket\{service_version="v2",le="0\.25"\} 1$/m);
    expect(text).toMatch(/^http_server_request_duration_count\{[^}]*http_response_status_code="503",error_type="overloaded"\} 1$/m);
    // The slot holds what the app was asked to answer: the held request, not the one turned away.
    expect(sidecar.status().local.requests).toBe(1);
    expect(text).toMatch(/^canary_gate_proxy_requests_total\{service_version="v2"\} 1$/m);
  });

  it('counts a body that came too slowly as body_timeout, not as a request of the version', async () => {
    const answer = await trickleUpload(proxyPort, '/slow-body', 4, 50, new Promise(() => undefined));
    expect(answer.status).toBe(408);
    await eventually(
      async () => (/^canary_gate_proxy_rejected_total\{reason="body_timeout"\} 1$/m.test(await metrics()) ? true : undefined),
      5000,
      'the body_timeout count',
    );
    expect(sidecar.status().local.requests).toBe(1);
  });
});
