/**
 * The rollout's parts for one process, built from the config: the plan, the Redis store, the lease holder's driver,
 * the operator controls and their admin routes. The sidecar wires the driver after its evaluator and the routes into
 * its admin server; the CLI uses the store and the controls alone.
 */
import type { Logger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import type { ServiceKeys } from '../core/keys.ts';
import { rolloutStages, type RolloutStage } from '../core/rollout-plan.ts';
import type { GateEvent } from '../core/transitions.ts';
import type { RolloutStats } from '../metrics/gate-metrics.ts';
import type { Cluster, Redis as IORedis } from 'ioredis';
import { rolloutRoutes } from './admin-routes.ts';
import { RolloutControl } from './control.ts';
import { RolloutDriver } from './driver.ts';
import { RedisRolloutStore } from './redis-rollout-store.ts';

/** A single server's client (standalone, sentinel) or a Cluster's, as src/fleet/redis-client.ts makes them. */
type Redis = IORedis | Cluster;

/** The plan of the config's rollout section. */
export function stagesOf(config: Config): RolloutStage[] {
  return rolloutStages(config.rollout.steps, config.rollout.minStepTime);
}

/** The rollout store on `redis`, with the config's flag key, audit cap and latch (the dry-run key in advisory mode). */
export function rolloutStoreOf(config: Config, redis: Redis, keys: ServiceKeys): RedisRolloutStore {
  return new RedisRolloutStore(redis, keys, {
    flagKey: config.flag.key,
    auditMaxLen: config.flag.auditMaxLen,
    latchKey: config.policy.advisory ? keys.dryRun : keys.decision,
  });
}

export interface RolloutParts {
  readonly driver: RolloutDriver;
  readonly control: RolloutControl;
  readonly routes: ReturnType<typeof rolloutRoutes>;
  /** The metrics' view on the lease holder, undefined elsewhere or without a rollout. */
  stats(holding: boolean): RolloutStats | undefined;
}

/**
 * @param clock wall clock, ms since the epoch
 * @param notify the notifier's entry (never throws)
 */
export function createRolloutParts(
  config: Config,
  redis: Redis,
  keys: ServiceKeys,
  clock: () => number,
  logger: Logger,
  notify: (event: GateEvent) => void,
): RolloutParts {
  const stages = stagesOf(config);
  const store = rolloutStoreOf(config, redis, keys);
  const driver = new RolloutDriver(
    store,
    stages,
    { pod: config.pod.name, minSamples: config.policy.minSamples, advisory: config.policy.advisory },
    logger,
    notify,
  );
  const control = new RolloutControl(store, stages, clock);
  return {
    driver,
    control,
    routes: rolloutRoutes(control),
    stats(holding) {
      const { state, transitions } = driver.status();
      if (!holding || state === null) return undefined;
      return {
        status: state.status,
        step: state.stage + 1,
        weightPercent: state.weight,
        requestsNeeded: state.evidence?.stillNeeded ?? null,
        transitions,
      };
    },
  };
}
