/** What the proxy and protocol tests share: a proxy config for loopback tests and a wait for a condition. */
import type { Config } from '../../src/config/schema.ts';

/** The proxy's config in front of `upstream` on a free loopback port, generous timeouts, `overrides` on top. */
export function loopbackProxyConfig(upstream: string, overrides: Partial<Config['proxy']> = {}): Config['proxy'] {
  return {
    host: '127.0.0.1',
    port: 0,
    protocol: 'http1',
    upstream,
    upstreamProtocol: 'http1',
    connections: 16,
    connectTimeout: 1000,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    keepAliveTimeout: 4000,
    clientHeadersTimeout: 10_000,
    queueTimeout: 5000,
    clientBodyTimeout: 10_000,
    clientBodyMinRate: 500,
    trustedProxies: [],
    errorStatuses: ['5xx'],
    grpcErrorCodes: [2, 4, 12, 13, 14, 15],
    routes: [],
    tls: { certFile: '', keyFile: '', clientCaFile: '', reloadInterval: 0 },
    ...overrides,
  };
}

/** Polls `condition` every 5 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
