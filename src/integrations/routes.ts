/**
 * The integration endpoints of one sidecar, as admin routes (`AdminHandlers.routes`): Argo Rollouts' `web` metric
 * provider (argo-analysis.ts) and Flagger's webhooks (flagger-webhooks.ts), both answering from the verdict the lease
 * holder publishes in Redis (verdict-store.ts) or, for a pair nobody publishes, from the fleet's slots (judgement.ts).
 */
import type { Config } from '../config/schema.ts';
import type { Logger } from '../config/logger.ts';
import type { RollbackDecision } from '../core/controller.ts';
import type { JudgePolicy } from '../core/judge.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { Redis } from '../fleet/redis-client.ts';
import type { AdminRoute } from '../metrics/admin-server.ts';
import { analysisRoute } from './argo-analysis.ts';
import { flaggerRoutes } from './flagger-webhooks.ts';
import { judgePair, onDemandJudge, type JudgementOptions, type VersionPair } from './judgement.ts';
import type { RedisVerdictStore } from './verdict-store.ts';

export interface IntegrationDeps {
  readonly config: Config;
  readonly policy: JudgePolicy;
  readonly redis: Redis;
  readonly keys: ServiceKeys;
  readonly verdicts: RedisVerdictStore;
  /** The latch as the flag store reads it (the dry-run latch in advisory mode). */
  readonly latch: () => Promise<RollbackDecision | 'corrupt' | null>;
  /** Clears the latch as POST /reset does, flag untouched. */
  readonly reset: (actor: string, reason: string) => Promise<void>;
  readonly adminToken: string | undefined;
  readonly clock: () => number;
  readonly logger: Logger;
}

/** Requests answered by one endpoint with one status since start (canary_gate_integration_requests_total). */
export interface IntegrationCount {
  readonly endpoint: string;
  readonly status: number;
  readonly count: number;
}

export interface Integrations {
  readonly routes: readonly AdminRoute[];
  /** What each endpoint answered, counted; a rejected handler (answered 503 by the admin server) counts as 503. */
  counts(): IntegrationCount[];
}

/** Wraps each route so that its answers are counted by endpoint and status. */
function counted(routes: readonly AdminRoute[]): Integrations {
  const counts = new Map<string, { endpoint: string; status: number; count: number }>();
  const bump = (endpoint: string, status: number): void => {
    const key = `${endpoint} ${status}`;
    const entry = counts.get(key) ?? { endpoint, status, count: 0 };
    entry.count++;
    counts.set(key, entry);
  };
  return {
    routes: routes.map((route) => ({
      ...route,
      async handle(request) {
        try {
          const reply = await route.handle(request);
          bump(route.path, reply.status);
          return reply;
        } catch (err) {
          bump(route.path, 503);
          throw err;
        }
      },
    })),
    counts: () => [...counts.values()].map((c) => ({ ...c })),
  };
}

/** Builds the routes. Every handler resolves (Redis errors become verdicts) except the event hook's, which rejects (503). */
export function integrationRoutes(deps: IntegrationDeps): Integrations {
  const { config } = deps;
  const options: JudgementOptions = {
    versions: { baseline: config.versions.baseline, canary: config.versions.canary },
    policy: deps.policy,
    advisory: config.policy.advisory,
    slotMs: config.window.slot,
    slots: config.window.slots,
    delayMs: config.evaluation.delay,
    evaluates: config.evaluation.enabled,
  };
  const sources = { readPublished: () => deps.verdicts.read(), judgeOnDemand: onDemandJudge(deps.redis, deps.keys, options) };
  const judge = (pair: VersionPair) => judgePair(options, sources, pair, deps.clock());
  return counted([
    analysisRoute(config.service, options.versions, judge),
    ...flaggerRoutes({
      judge,
      adminToken: deps.adminToken,
      logger: deps.logger,
      revisions: {
        currentRevision: () => deps.redis.get(deps.keys.revision),
        swapRevision: (checksum) => deps.redis.set(deps.keys.revision, checksum, 'GET'),
        latched: async () => (await deps.latch()) !== null,
        async clear(actor, reason) {
          await deps.reset(actor, reason);
          await deps.verdicts.clear();
        },
      },
    }),
  ]);
}
