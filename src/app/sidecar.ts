/**
 * Composition: `buildSidecar(config, deps)` wires the proxy, the slot recorder and publisher, the evaluator, the
 * flag store and the admin server, and returns `{ start, close, destroy }` (fastify's build/listen split: nothing
 * here touches argv, the environment, signals or exit codes; the CLI passes in what they say).
 *
 * Transitions go from the evaluator to the notifier (src/notify): queued there and sent off the evaluation path, to the
 * sinks whose secrets the CLI passes in.
 *
 * Timers, all on one SlotClock: at every slot boundary (aligned on the epoch) the current slot is sealed and queued
 * for Redis; at boundary + evaluation.delay the lease holder evaluates; every leaseTtl / 3 the lease is renewed.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../config/logger.ts';
import { createLogger } from '../config/logger.ts';
import { checkAdminToken } from '../config/admin-token.ts';
import { DEFAULTS } from '../config/defaults.ts';
import { SERVICE_PLACEHOLDER } from '../config/load.ts';
import { configHash, judgePolicyOf } from '../config/policy.ts';
import type { Config } from '../config/schema.ts';
import { manualDecision, type RollbackDecision } from '../core/controller.ts';
import { initHistograms } from '../core/histogram.ts';
import { serviceKeys } from '../core/keys.ts';
import { slotIndexAt, SlotRecorder, type SealedWithHistogram } from '../core/slot-recorder.ts';
import { FleetWindows } from '../core/fleet-windows.ts';
import type { WindowSnapshot } from '../core/window.ts';
import { FleetReader } from '../fleet/fleet-reader.ts';
import { createRedisClient, waitReady, type Redis } from '../fleet/redis-client.ts';
import { RedisLease } from '../fleet/redis-lease.ts';
import { RedisSlotStore } from '../fleet/redis-slot-store.ts';
import { warnOnLegacyFlag } from '../flag/legacy-flag.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { integrationRoutes } from '../integrations/routes.ts';
import { RedisVerdictStore, verdictTtlMs } from '../integrations/verdict-store.ts';
import { createAdminServer, type AdminRequestBody } from '../metrics/admin-server.ts';
import { createGateMetrics } from '../metrics/gate-metrics.ts';
import { Notifier, type NotifierOptions } from '../notify/notifier.ts';
import { createSinks, type NotifySecrets } from '../notify/sinks.ts';
import { createProxyServer } from '../proxy/proxy-server.ts';
import { createRolloutParts } from '../rollout/compose.ts';
import type { RolloutDriverStatus } from '../rollout/driver.ts';
import { createRouteMatcher } from '../metrics/routes.ts';
import { Evaluator, type EvaluationEvent, type EvaluatorStatus } from './evaluator.ts';
import { SlotPublisher } from './publisher.ts';
import { SlotClock } from './slot-clock.ts';

export interface SidecarDeps {
  /** Wall clock, ms since the epoch. Default Date.now. */
  readonly clock?: () => number;
  readonly logger?: Logger;
  /**
   * Bearer token of POST /rollback and /reset (the CLI passes CANARY_GATE_ADMIN_TOKEN); absent or empty: both answer
   * 403; shorter than 32 characters: buildSidecar throws CG_CONFIG_INVALID.
   */
  readonly adminToken?: string;
  /** Called after every evaluation this sidecar makes as lease holder. */
  readonly onEvaluation?: (event: EvaluationEvent) => void;
  /**
   * Notification sinks: their URLs and keys (the CLI reads CANARY_GATE_NOTIFY_*; absent: no sink), and the notifier's
   * options (tests shorten its timeout and backoff). Bad URLs throw CG_CONFIG_INVALID here, at build time.
   */
  readonly notify?: { readonly secrets: NotifySecrets; readonly options?: Partial<NotifierOptions> };
}

export interface Sidecar {
  /** Listens on the proxy and admin ports (0 picks free ones) and starts the timers. */
  start(): Promise<{ proxyPort: number; adminPort: number }>;
  /** Drains: stops accepting, finishes in-flight requests, seals and publishes the last slot, writes a pending decision, releases the lease. */
  close(): Promise<void>;
  /** Stops at once, dropping what is unpublished (tests of a crash use it). */
  destroy(): Promise<void>;
  status(): SidecarStatus;
  /** Evaluates now (tests; the timer does this every slot). */
  evaluateNow(): Promise<EvaluationEvent | null>;
  readonly redis: Redis;
}

export interface SidecarStatus {
  readonly service: string;
  readonly pod: string;
  readonly version: string;
  readonly role: 'baseline' | 'canary';
  /** policy.advisory: decisions go to the dry-run key, never the flag; `latch` is then the dry-run latch. */
  readonly advisory: boolean;
  readonly evaluator: {
    readonly enabled: boolean;
    readonly holding: boolean;
    readonly holder: string | null;
    readonly fencingToken: number;
    readonly evaluations: Record<string, number>;
    readonly redisHolds: number;
  };
  readonly state: EvaluatorStatus['state'];
  readonly latch: RollbackDecision | 'corrupt' | null;
  /** The latched record carries another config hash than this sidecar's (or none): shown, never written back. */
  readonly latchForeign: boolean;
  readonly pendingDecision: RollbackDecision | null;
  readonly latestVerdict: EvaluatorStatus['latest'];
  readonly lastError: string | null;
  /** The last error seen, with when, kept after it cleared. */
  readonly lastErrorSeen: EvaluatorStatus['lastErrorSeen'];
  readonly local: {
    readonly requests: number;
    readonly errors: number;
    readonly slotIndex: number;
    readonly window: WindowSnapshot | null;
  };
  readonly publish: {
    readonly buffered: number;
    readonly published: number;
    readonly dropped: number;
    readonly failures: number;
    readonly lastPublishedSlot: number;
  };
  readonly redis: {
    /** redis.mode: standalone, cluster or sentinel. */
    readonly mode: string;
    readonly connection: string;
    readonly errors: number;
    readonly corruptPayloads: number;
    /** Slot keys of another type than a hash, skipped by the fleet read. */
    readonly keysSkipped: number;
  };
  /** The rollout as this sidecar last read it (lease holder); GET /rollout/status reads Redis. */
  readonly rollout: RolloutDriverStatus;
}

export function buildSidecar(config: Config, deps: SidecarDeps = {}): Sidecar {
  checkAdminToken(deps.adminToken);
  initHistograms();
  const clock = deps.clock ?? Date.now;
  const logger =
    deps.logger ?? createLogger(config.log.level, { service: config.service, pod: config.pod.name, version: config.pod.version });
  const slotMs = config.window.slot;
  const keys = serviceKeys(config.redis.keyPrefix, config.service);
  const redis = createRedisClient(config.redis, logger);
  const holderId = `${config.pod.name}/${randomBytes(4).toString('hex')}`;

  const recorder = new SlotRecorder(slotMs, clock());
  const publisher = new SlotPublisher(
    new RedisSlotStore(redis, keys, config.window.slots, slotMs),
    config.pod.version,
    config.pod.name,
    config.window.publishBuffer,
    logger,
  );
  const reader = new FleetReader(redis, keys, config.versions, slotMs, config.window.slots, { logger });
  const flags = new RedisFlagStore(redis, keys, flagOptionsOf(config.flag, config.policy.advisory));
  const notifier = new Notifier(
    createSinks(deps.notify?.secrets ?? {}),
    { service: config.service, pod: config.pod.name },
    logger,
    deps.notify?.options,
  );
  // The lease holder's verdicts, published so that every pod answers the integrations (src/integrations) alike.
  const verdicts = new RedisVerdictStore(
    redis,
    keys,
    { service: config.service, baseline: config.versions.baseline, canary: config.versions.canary, advisory: config.policy.advisory },
    verdictTtlMs(slotMs, config.evaluation.leaseTtl, config.evaluation.delay),
    clock,
  );
  const judgePolicy = judgePolicyOf(config);
  // The rollout: the lease holder steps it after each evaluation; operators drive it through /rollout/* and the CLI.
  const rollout = createRolloutParts(config, redis, keys, clock, logger, (event) => notifier.notify(event));
  const evaluator = new Evaluator(
    {
      holderId,
      pod: config.pod.name,
      slotMs,
      slots: config.window.slots,
      leaseTtlMs: config.evaluation.leaseTtl,
      policy: judgePolicy,
      consecutiveBreaches: config.policy.consecutiveBreaches,
      consecutiveNoData: config.policy.consecutiveNoData,
      configHash: configHash(config),
      advisory: config.policy.advisory,
    },
    {
      lease: new RedisLease(redis, keys),
      flags,
      source: reader,
      clock,
      logger,
      notify: (event) => notifier.notify(event),
      verdicts,
      afterHeld: (held) => rollout.driver.afterEvaluation(held),
    },
  );
  const role = config.pod.version === config.versions.baseline ? 'baseline' : 'canary';
  // This pod's own rolling window, for the scope="pod" figures every sidecar exports.
  const podWindow = new FleetWindows([config.pod.version], slotMs, config.window.slots);
  let podSnapshot: WindowSnapshot | null = null;
  const addToPodWindow = (sealed: SealedWithHistogram): void => {
    podWindow.advanceTo(sealed.slotIndex);
    podWindow.add(config.pod.version, config.pod.name, sealed);
    podSnapshot = podWindow.snapshot(config.pod.version);
  };
  // Filled in below, once the metrics exist; the proxy records into both the slot and the duration histogram.
  let recordRequest: (
    latencyUs: number,
    method: string,
    status: number,
    outcome: string,
    route: string,
    queueWaitUs: number,
    grpcStatus: number | undefined,
  ) => void = () => undefined;
  const routeOf = createRouteMatcher(config.proxy.routes);
  const proxy = createProxyServer({
    config: config.proxy,
    recorder: {
      record(r) {
        // The slot (what the gate judges) takes the app's latency; requests the app was not asked to answer stay out.
        if (r.appLatencyUs !== null) recorder.record(r.appLatencyUs, r.isError);
        recordRequest(r.totalLatencyUs, r.method, r.status, r.outcome, routeOf(r.target), r.queueWaitUs, r.grpcStatus);
      },
    },
    logger,
  });
  let accepting = false;
  const timers = new SlotClock(slotMs, clock);
  const oldestUsefulSlot = (): number => slotIndexAt(clock(), slotMs) - config.window.slots;

  const flush = (): void => {
    void publisher.flush(oldestUsefulSlot()).then((empty) => {
      if (!empty) timers.after(Math.min(1000, slotMs), flush);
    });
  };

  const onSlotBoundary = (): void => {
    const sealed = recorder.seal(clock());
    publisher.enqueue(sealed);
    addToPodWindow(sealed);
    flush();
    if (config.evaluation.enabled) timers.after(config.evaluation.delay, () => void evaluate());
  };

  const evaluate = async (): Promise<EvaluationEvent | null> => {
    const event = await evaluator.evaluate();
    if (event) deps.onEvaluation?.(event);
    return event;
  };

  const status = (): SidecarStatus => {
    const e = evaluator.status();
    return {
      service: config.service,
      pod: config.pod.name,
      version: config.pod.version,
      role,
      advisory: config.policy.advisory,
      evaluator: {
        enabled: config.evaluation.enabled,
        holding: e.holding,
        holder: e.holder,
        fencingToken: e.fencingToken,
        evaluations: e.evaluations,
        redisHolds: e.redisHolds,
      },
      state: e.state,
      latch: e.latch,
      latchForeign: e.latchForeign,
      pendingDecision: e.pending,
      latestVerdict: e.latest,
      lastError: e.lastError,
      lastErrorSeen: e.lastErrorSeen,
      local: { requests: recorder.totalRequests, errors: recorder.totalErrors, slotIndex: recorder.currentSlotIndex, window: podSnapshot },
      publish: {
        buffered: publisher.buffered,
        published: publisher.published,
        dropped: publisher.dropped,
        failures: publisher.failures,
        lastPublishedSlot: publisher.lastPublishedSlot,
      },
      redis: {
        mode: config.redis.mode,
        connection: redis.status,
        errors: e.redisErrors + publisher.failures,
        corruptPayloads: reader.corruptTotal,
        keysSkipped: reader.keysSkippedTotal,
      },
      rollout: rollout.driver.status(),
    };
  };

  const metrics = createGateMetrics(
    () => {
      const e = evaluator.status();
      return {
        version: config.pod.version,
        role,
        warnings: e.warnings,
        pod: podSnapshot,
        requests: recorder.totalRequests,
        errors: recorder.totalErrors,
        phase: e.state.phase,
        consecutiveBreaches: e.state.consecutiveBreaches,
        evaluations: e.evaluations,
        redisHolds: e.redisHolds,
        rollbacks: e.rollbacksWritten,
        redisErrors: e.redisErrors + publisher.failures,
        corruptPayloads: reader.corruptTotal,
        keysSkipped: reader.keysSkippedTotal,
        slotsDropped: publisher.dropped,
        rejected: proxy.stats.rejected,
        tls: proxy.stats.tls,
        leaseHeld: e.holding,
        latest: e.latest,
        notifications: notifier.stats(),
        integrations: integrations.counts(),
        rollout: rollout.stats(e.holding),
      };
    },
    { service: config.service, pod: config.pod.name, version: config.pod.version },
  );
  recordRequest = metrics.recordRequest;

  const manualRollback = async (body: AdminRequestBody): Promise<unknown> => {
    const decision = manualDecision({
      reason: body.reason,
      by: body.actor,
      atMs: clock(),
      latest: evaluator.status().latest,
      configHash: configHash(config),
    });
    const outcome = await flags.rollback(decision, 0);
    if (outcome === 'written') evaluator.latchManual(decision);
    return { outcome, flag: config.flag.key, value: config.flag.rollbackValue };
  };
  const reset = async (body: AdminRequestBody): Promise<unknown> => {
    const atMs = clock();
    await flags.reset(body.actor, body.reason, body.flag, atMs);
    evaluator.clearAfterReset({ atMs, actor: body.actor, reason: body.reason });
    return { outcome: 'reset', flag: config.flag.key, value: body.flag };
  };

  const integrations = integrationRoutes({
    config,
    policy: judgePolicy,
    redis,
    keys,
    verdicts,
    latch: () => flags.latch(),
    reset: async (actor, reason) => void (await reset({ actor, reason, flag: null })),
    adminToken: deps.adminToken,
    clock,
    logger,
  });
  const admin = createAdminServer(
    {
      ready: () => accepting,
      status,
      metrics: (req, res) => metrics.handle(req, res),
      rollback: manualRollback,
      reset,
      routes: [...integrations.routes, ...rollout.routes],
    },
    deps.adminToken,
    logger,
  );

  const freeMemory = async (): Promise<void> => {
    await metrics.shutdown().catch(() => undefined);
    redis.disconnect();
    reader.destroy();
    podWindow.destroy();
    recorder.destroy();
  };

  return {
    redis,
    status,
    evaluateNow: evaluate,
    async start() {
      // Give Redis one connect timeout to come up; the sidecar starts without it (fail open) if it does not.
      await waitReady(redis, config.redis.connectTimeout).catch((err: Error) =>
        logger.warn({ err: err.message }, 'starting without redis'),
      );
      if (config.flag.key === DEFAULTS.flag.key.replaceAll(SERVICE_PLACEHOLDER, config.service))
        await warnOnLegacyFlag(redis, config.flag.key, logger);
      const adminAddress = await admin.listen(config.admin.port, config.admin.host);
      const proxyAddress = await proxy.listen();
      accepting = true;
      timers.eachSlot(() => recorder.currentSlotIndex, onSlotBoundary);
      if (config.evaluation.enabled) timers.every(config.evaluation.leaseTtl / 3, () => evaluator.renewLease());
      logger.info({ proxy: proxyAddress, admin: adminAddress, upstream: config.proxy.upstream, holderId }, 'canary-gate sidecar started');
      return { proxyPort: proxyAddress.port, adminPort: adminAddress.port };
    },
    async close() {
      accepting = false;
      timers.stop();
      await proxy.close();
      publisher.enqueue(recorder.seal(clock()));
      const deadline = clock() + 2000;
      while (!(await publisher.flush(oldestUsefulSlot())) && clock() < deadline) await new Promise((r) => setTimeout(r, 100));
      await evaluator.writePending();
      await evaluator.releaseLease();
      await admin.close();
      await notifier.close();
      logger.info(
        { published: publisher.published, dropped: publisher.dropped, buffered: publisher.buffered },
        'canary-gate sidecar closed',
      );
      await freeMemory();
    },
    async destroy() {
      accepting = false;
      timers.stop();
      await Promise.allSettled([proxy.destroy(), admin.close(), notifier.destroy()]);
      await freeMemory();
    },
  };
}
