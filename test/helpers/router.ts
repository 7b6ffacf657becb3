/**
 * A real router for the tests: `buildRouter` on a config loaded from environment overrides (loopback, free ports),
 * two real upstreams that answer with their version, and a client that counts which version served each request.
 */
import { request } from 'undici';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { buildRouter, type Router } from '../../src/router/router.ts';
import { silent } from './redis.ts';
import { startUpstream, type Upstream } from './upstream.ts';

export interface RouterUnderTest {
  readonly router: Router;
  readonly config: Config;
  /** http://127.0.0.1:<router port> */
  readonly url: string;
  /** http://127.0.0.1:<admin port> */
  readonly adminUrl: string;
  readonly upstreams: { readonly baseline: Upstream; readonly canary: Upstream };
  close(): Promise<void>;
}

/** Upstreams that answer 200 with the version's name, then a router between them; `env` overrides the config. */
export async function startRouter(env: Record<string, string>): Promise<RouterUnderTest> {
  const baseline = await startUpstream((_req, res) => res.end('v1'));
  const canary = await startUpstream((_req, res) => res.end('v2'));
  const config = loadConfig({
    env: {
      CANARY_GATE_ROUTER_HOST: '127.0.0.1',
      CANARY_GATE_ROUTER_PORT: '0',
      CANARY_GATE_ROUTER_ADMIN_HOST: '127.0.0.1',
      CANARY_GATE_ROUTER_ADMIN_PORT: '0',
      CANARY_GATE_ROUTER_BASELINE_UPSTREAM: baseline.url,
      CANARY_GATE_ROUTER_CANARY_UPSTREAM: canary.url,
      ...env,
    },
    hostname: 'router-test',
  });
  const router = buildRouter(config, { logger: silent });
  const ports = await router.start();
  return {
    router,
    config,
    url: `http://127.0.0.1:${ports.port}`,
    adminUrl: `http://127.0.0.1:${ports.adminPort}`,
    upstreams: { baseline, canary },
    close: async () => {
      await router.destroy();
      await Promise.all([baseline.close(), canary.close()]);
    },
  };
}

/** One request; resolves to the status, the version header and the body (which upstream answered). */
export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; version: string; body: string }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, version: String(res.headers['x-canary-gate-version']), body: await res.body.text() };
}

/** Sends `n` requests (`concurrency` at a time) and counts the responses by version header; every one must be a 200 from the version it names. */
export async function split(url: string, n: number, concurrency = 20): Promise<{ v1: number; v2: number; wrong: number }> {
  const counts = { v1: 0, v2: 0, wrong: 0 };
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent++;
      const r = await get(url);
      if (r.status === 200 && (r.version === 'v1' || r.version === 'v2') && r.body === r.version) counts[r.version]++;
      else counts.wrong++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return counts;
}

/** The value of an unlabelled (or exactly labelled) series in a Prometheus text response, or undefined. */
export async function scrape(adminUrl: string, series: string): Promise<number | undefined> {
  const res = await request(`${adminUrl}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
