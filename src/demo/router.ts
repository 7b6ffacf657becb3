/**
 * The demo's traffic router: sends the flag's percentage of requests to the canary's sidecar and the rest to the
 * baseline's, and everything to the baseline as soon as the flag says 0 (or is missing or unreadable). It stands in
 * for the Istio VirtualService weight or ingress rule a real rollout would drive from the same Redis key.
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';
import type { Redis } from '../fleet/redis-client.ts';
import { forwardRequest } from '../proxy/forward.ts';
import { closeServer, listen } from './demo-app.ts';

export interface DemoRouter {
  /** Requests sent to each version so far. */
  readonly routed: { baseline: number; canary: number };
  listen(): Promise<number>;
  close(): Promise<void>;
}

/**
 * @param pollMs how often the flag is read, ms
 */
export function createDemoRouter(redis: Redis, flagKey: string, baselineUrl: string, canaryUrl: string, pollMs = 200): DemoRouter {
  const baseline = new Pool(baselineUrl, { connections: 32 });
  const canary = new Pool(canaryUrl, { connections: 32 });
  const routed = { baseline: 0, canary: 0 };
  let percentage = 0;
  let credit = 0;
  const poll = async (): Promise<void> => {
    try {
      const value = Number(await redis.get(flagKey));
      percentage = Number.isFinite(value) ? Math.min(100, Math.max(0, value)) : 0;
    } catch {
      percentage = 0; // unreadable flag: the safe side is the baseline
    }
  };
  const timer = setInterval(() => void poll(), pollMs);
  const server = createServer((req, res) => {
    // Smooth weighted split: exact shares over any run of requests, no randomness.
    credit += percentage;
    const toCanary = credit >= 100;
    if (toCanary) credit -= 100;
    routed[toCanary ? 'canary' : 'baseline']++;
    void forwardRequest(toCanary ? canary : baseline, req, res, {});
  });
  server.keepAliveTimeout = 10_000;
  return {
    routed,
    listen: async () => {
      await poll();
      return listen(server);
    },
    close: async () => {
      clearInterval(timer);
      await closeServer(server);
      await Promise.all([baseline.close(), canary.close()]);
    },
  };
}
