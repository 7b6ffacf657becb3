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

/** Builds the routes. Every handler resolves (Redis errors become verdicts) except the event hook's, which rejects (503). */
export function integrationRoutes(deps: IntegrationDeps): AdminRoute[] {
  const { config } = deps;
  const options: JudgementOptions = {
    versions: { baseline: config.versions.baseline, canary: config.versions.canary },
    policy: deps.policy,
    advisory: config.policy.advisory,
    slotMs: config.window.slot,
    slots: config.window.slots,
    delayMs: config.evaluation.delay,
  };
  const sources = { readPublished: () => deps.verdicts.read(), judgeOnDemand: onDemandJudge(deps.redis, deps.keys, options) };
  const judge = (pair: VersionPair) => judgePair(options, sources, pair, deps.clock());
  return [
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
  ];
}
