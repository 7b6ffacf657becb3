/**
 * What a load run watches besides its own responses: the rollback flag in Redis and the gate's latest verdict
 * (from sidecars' `GET /status`, or in process for the demo fleet). Every read is bounded by a timeout and fails
 * soft: a failed read is `undefined` in the timeline, never a failed run.
 */
import { request } from 'undici';
import { createLogger } from '../config/logger.ts';
import type { Verdict } from '../core/verdict.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';

/** The gate's view of both versions at one moment (from its latest verdict). Latencies ms, ratios 0..1. */
export interface GateView {
  readonly outcome: string;
  /** When the judged window ended, ms since the epoch. */
  readonly atMs: number;
  readonly baseline: GateSide;
  readonly canary: GateSide;
}

interface GateSide {
  readonly version: string;
  readonly requests: number;
  readonly p95Ms: number | null;
  readonly errorRatio: number | null;
}

/** The newest of some verdicts or views (by `atMs`); null when there is none. */
export function newest<T extends { readonly atMs: number }>(items: ReadonlyArray<T | null | undefined>): T | null {
  const found = items.filter((x): x is T => x !== null && x !== undefined);
  return found.sort((a, b) => b.atMs - a.atMs)[0] ?? null;
}

/** A verdict (in process, or as /status serialises it with NaN as null) reduced to a {@link GateView}; null stays null. */
export function gateViewOf(verdict: Pick<Verdict, 'outcome' | 'atMs' | 'baseline' | 'canary'> | null): GateView | null {
  if (verdict === null) return null;
  const side = (f: Verdict['baseline']): GateSide => ({
    version: f.version,
    requests: f.requests,
    p95Ms: Number.isFinite(f.p95Ms) ? f.p95Ms : null,
    errorRatio: Number.isFinite(f.errorRatio) ? f.errorRatio : null,
  });
  return { outcome: verdict.outcome, atMs: verdict.atMs, baseline: side(verdict.baseline), canary: side(verdict.canary) };
}

/** Reads a flag key. */
export interface FlagReader {
  /** The flag's value; null when the key is unset; undefined when Redis does not answer in time (a first read waits for the connection as long). */
  read(): Promise<string | null | undefined>;
  close(): void;
}

/**
 * @param url redis:// URL
 * @param key the flag's key (e.g. feature:v2_traffic_percentage)
 * @param timeoutMs per read, ms
 */
export function createFlagReader(url: string, key: string, timeoutMs = 500): FlagReader {
  const redis = createRedisClient({ url, commandTimeout: timeoutMs, connectTimeout: timeoutMs }, createLogger('silent'));
  return {
    read: async () => {
      if (redis.status === 'connecting' || redis.status === 'connect') await waitReady(redis, timeoutMs).catch(() => undefined);
      if (redis.status !== 'ready') return undefined;
      return redis.get(key).catch(() => undefined);
    },
    close: () => redis.disconnect(),
  };
}

/**
 * Polls sidecars' admin `/status` and returns the newest verdict among them (only the evaluating sidecar has one).
 * @param adminUrls base URLs such as http://127.0.0.1:9901
 * @param timeoutMs per request, ms
 */
export function createStatusPoller(adminUrls: readonly string[], timeoutMs = 500): () => Promise<GateView | null | undefined> {
  const poll = async (base: string): Promise<GateView | null | undefined> => {
    try {
      const res = await request(new URL('/status', base), { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return undefined;
      }
      const status = (await res.body.json()) as { latestVerdict?: Verdict | null };
      return gateViewOf(status.latestVerdict ?? null);
    } catch {
      return undefined;
    }
  };
  return async () => {
    const views = await Promise.all(adminUrls.map(poll));
    return views.every((v) => v === undefined) ? undefined : newest(views);
  };
}
