/**
 * The one owner of every exported metric (flagger's `Recorder` habit), served as one Prometheus text response:
 * the OpenTelemetry metrics (collected through the Prometheus exporter's reader) followed by prom-client's default Node.js runtime metrics (an explicit
 * registry, never the global one), both set up by prometheus-endpoint.ts.
 *
 * - `http.server.request.duration` (seconds, OpenTelemetry HTTP semantic conventions) is the only instrument recorded
 *   on the request path: attribute sets are built once per (method, status, error type, route, gRPC status) and
 *   reused, so a request allocates nothing for metrics. gRPC calls alone carry `rpc.grpc.status_code` (the numeric
 *   `grpc-status`) and `rpc.status_code` (its name, `NOT_FOUND`).
 * - Everything else is observable: read from the sidecar's own counters and latest verdict at scrape time.
 *
 * The exporter turns dots into underscores and appends `_total` to counters but no unit suffix, so names that carry a
 * unit say it themselves (`..._seconds`). The version label is `service_version` everywhere. README lists them all.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_RPC_STATUS_CODE,
} from '@opentelemetry/semantic-conventions';
import type { ATTR_RPC_GRPC_STATUS_CODE as INCUBATING_RPC_GRPC_STATUS_CODE } from '@opentelemetry/semantic-conventions/incubating';
import { PHASES, type Phase } from '../core/controller.ts';
import { isSequential, OUTCOME_ORDER, type Outcome, type Verdict, type VersionFigures } from '../core/verdict.ts';
import type { WindowSnapshot } from '../core/window.ts';
import { createPrometheusEndpoint } from './prometheus-endpoint.ts';

/**
 * Bucket boundaries of http.server.request.duration, seconds: the OpenTelemetry semantic conventions' advice for
 * this instrument (the SDK's default boundaries, 0..10000, are meant for milliseconds).
 */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/**
 * `rpc.grpc.status_code`, the numeric gRPC status. In semantic-conventions 1.45 it is exported only from the
 * incubating entry point (deprecated there in favour of `rpc.status_code`), whose module costs about 5 MiB of RSS at
 * start-up: its type is imported, so the compiler checks this name against the library's, and its value is not
 * (the copy OpenTelemetry recommends for incubating names).
 */
const ATTR_RPC_GRPC_STATUS_CODE: typeof INCUBATING_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
/** gRPC status names by code 0..16 (grpc/doc/statuscodes.md), the values of `rpc.status_code` for gRPC. */
const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];
/** Methods kept as they are; anything else is reported as `_OTHER` (semantic conventions; bounds cardinality). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** Outcomes reported as `error.type`: upstream failures, and the proxy's 503 when saturated and 408 for a slow body. */
const ERROR_TYPES = new Set(['connect_error', 'reset', 'timeout', 'overloaded', 'body_timeout']);
/** Reasons of canary_gate_proxy_rejected_total, all exported from the start (at 0) so that rate() sees the first one. */
const REJECTION_REASONS = ['header_overflow', 'timeout', 'malformed', 'bad_request', 'body_timeout', 'overloaded', 'slow_read'];
/**
 * Bucket boundaries of canary_gate_proxy_queue_wait_seconds, seconds: from a millisecond (a connection freed at
 * once) to past the default queueTimeout (5 s), where a request is turned away.
 */
export const QUEUE_WAIT_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the sidecar counts; read at every scrape. Counters are monotonic since start. */
export interface GateStats {
  readonly version: string;
  readonly role: 'baseline' | 'canary';
  readonly requests: number;
  readonly errors: number;
  readonly phase: Phase;
  readonly consecutiveBreaches: number;
  readonly evaluations: Readonly<Record<Outcome, number>>;
  /** Evaluations that could not read Redis and held, without a verdict. */
  readonly redisHolds: number;
  readonly warnings: number;
  readonly rollbacks: number;
  readonly redisErrors: number;
  readonly corruptPayloads: number;
  /** Fleet slot keys skipped because another client wrote another type than a hash there. Absent: 0. */
  readonly keysSkipped?: number;
  readonly slotsDropped: number;
  /** Requests refused rather than forwarded (by the HTTP parser or the proxy), by reason. */
  readonly rejected: Readonly<Record<string, number>>;
  /** The TLS port's certificate reloads and the served certificate's notAfter, ms since the epoch (absent or null: no TLS). */
  readonly tls?: { readonly reloaded: number; readonly failed: number; readonly notAfterMs: number } | null;
  readonly leaseHeld: boolean;
  /** The latest fleet verdict, on the lease holder only (null elsewhere). */
  readonly latest: Verdict | null;
  /** This pod's own window (its sealed slots), every sidecar. */
  readonly pod: WindowSnapshot | null;
  /** Each configured notification sink's counters (none configured: empty or absent). */
  readonly notifications?: readonly NotificationStats[];
  /** Answers of the integration endpoints (src/integrations) by endpoint path and HTTP status, since start. */
  readonly integrations?: readonly { readonly endpoint: string; readonly status: number; readonly count: number }[];
  /** The rollout as the lease holder last read it (absent elsewhere, or when none was ever started). */
  readonly rollout?: RolloutStats;
}

/** The rollout's figures on the lease holder (src/rollout/driver.ts). */
export interface RolloutStats {
  /** One of ROLLOUT_STATUSES (progressing, paused, completed, rolled_back, aborted). */
  readonly status: string;
  /** 1-based step of the plan, and the canary's weight, percent 0..100. */
  readonly step: number;
  readonly weightPercent: number;
  /** Canary requests still needed before the next promotion (absent when unknown or not reachable at this traffic). */
  readonly requestsNeeded: number | null;
  /** Transitions this sidecar wrote or read as lease holder, by kind (started, promoted, ...), since start. */
  readonly transitions: Readonly<Record<string, number>>;
}

/** One notification sink's counters since start (the shape of src/notify's SinkStats). */
export interface NotificationStats {
  readonly sink: string;
  /** Waiting in the sink's queue. */
  readonly queued: number;
  /** Delivered (a 2xx answer). */
  readonly sent: number;
  /** Delivery attempts that failed. */
  readonly failed: number;
  /** Given up, by reason (queue_full, rejected, retries_exhausted, shutdown). */
  readonly dropped: Readonly<Record<string, number>>;
}

export interface GateMetrics {
  /**
   * Records one finished request in http.server.request.duration, and its time queued for an upstream connection
   * (when it had to wait) in canary_gate_proxy_queue_wait_seconds. No allocation after warm-up.
   * @param latencyUs arrival to response end (the client-facing total, not the judged latency), µs; exported in seconds
   * @param route the matched route template (`http.route`), `''` for none
   * @param queueWaitUs time queued for an upstream connection, µs; 0: none (not recorded)
   * @param grpcStatus a gRPC call's status code 0..16 (from `grpc-status`), exported as `rpc.grpc.status_code` and
   *   `rpc.status_code`; undefined (any other request): neither attribute
   */
  recordRequest(
    latencyUs: number,
    method: string,
    status: number,
    outcome: string,
    route: string,
    queueWaitUs?: number,
    grpcStatus?: number,
  ): void;
  /** Serves the Prometheus text exposition (mount on GET /metrics). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

/**
 * @param stats read at every scrape; must be cheap and must not throw
 * @param identity resource of `target_info`: the gated service (`service.namespace`) and this pod (`service.instance.id`)
 */
export function createGateMetrics(stats: () => GateStats, identity: { service: string; pod: string; version: string }): GateMetrics {
  const endpoint = createPrometheusEndpoint({ service: identity.service, instance: identity.pod });
  const meter = endpoint.meter;

  const duration = meter.createHistogram('http.server.request.duration', {
    unit: 's',
    description:
      "Duration of HTTP server requests through the proxy, arrival to response end: what the client saw, queueing and its own slowness included (as Istio reports it). The gate judges the app's latency instead.",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
  });
  const queueWait = meter.createHistogram('canary_gate.proxy.queue_wait_seconds', {
    unit: 's',
    description:
      'Time requests waited for an upstream connection (only those that had to wait), seconds; those that waited proxy.queueTimeout got 503 overloaded. Not part of the judged latency.',
    advice: { explicitBucketBoundaries: QUEUE_WAIT_BUCKETS_S },
  });
  const versionAttributes: Attributes = { service_version: identity.version };
  const attributeCache = new Map<string, Attributes>();
  const attributesOf = (method: string, status: number, outcome: string, route: string, grpcStatus: number | undefined): Attributes => {
    const m = KNOWN_METHODS.has(method) ? method : '_OTHER';
    const errorType = ERROR_TYPES.has(outcome) ? outcome : '';
    // Only gRPC calls pay for the longer key; codes past 16 never leave forward-h2.ts (it reads one or two digits).
    const grpcName = grpcStatus === undefined ? undefined : GRPC_STATUS_NAMES[grpcStatus];
    const key = grpcName === undefined ? `${m} ${status} ${errorType} ${route}` : `${m} ${status} ${errorType} ${route} ${grpcStatus}`;
    let attrs = attributeCache.get(key);
    if (attrs === undefined) {
      attrs = { [ATTR_HTTP_REQUEST_METHOD]: m, service_version: identity.version };
      if (status > 0) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
      if (errorType) attrs[ATTR_ERROR_TYPE] = errorType;
      if (route) attrs[ATTR_HTTP_ROUTE] = route;
      if (grpcName !== undefined) {
        attrs[ATTR_RPC_GRPC_STATUS_CODE] = grpcStatus!;
        attrs[ATTR_RPC_STATUS_CODE] = grpcName;
      }
      attributeCache.set(key, attrs);
    }
    return attrs;
  };

  const counter = (name: string, description: string) => meter.createObservableCounter(name, { description });
  const gauge = (name: string, description: string, unit?: string) =>
    meter.createObservableGauge(name, unit ? { description, unit } : { description });
  const requests = counter('canary_gate.proxy.requests', 'Requests proxied by this sidecar, by version.');
  const errors = counter(
    'canary_gate.proxy.errors',
    'Requests counted as errors (configured status classes, upstream connect failures, resets, timeouts), by version.',
  );
  const latency = gauge(
    'canary_gate.window.latency_seconds',
    'Latency quantiles of the judged window from the merged HDR histogram, seconds; scope pod (this sidecar) or fleet (lease holder).',
    's',
  );
  const errorRatio = gauge('canary_gate.window.error_ratio', 'Error ratio (0..1) of the window, by role and scope.');
  const rps = gauge('canary_gate.window.requests_per_second', 'Requests per second over the window, by role and scope.');
  const samples = gauge(
    'canary_gate.window.requests',
    'Requests in the window (the sample count the minimum applies to), by role and scope.',
  );
  const observed = gauge(
    'canary_gate.check.observed',
    "The latest verdict's observed value per check: seconds for latency checks, ratio 0..1 for error checks.",
  );
  const threshold = gauge('canary_gate.check.threshold', "The latest verdict's failing threshold per check, same units as observed.");
  const result = gauge('canary_gate.check.result', "The latest verdict's result per check: 0 pass, 1 warn, 2 inconclusive, 3 fail.");
  const statistic = gauge(
    'canary_gate.check.statistic',
    'The latest verdict\'s sequential statistic per check (CUSUM, nats): the check fails at canary_gate_check_statistic_threshold{level="fail"}.',
  );
  const statisticThreshold = gauge(
    'canary_gate.check.statistic_threshold',
    "The sequential statistic's thresholds per check, nats, by level (fail, warn).",
  );
  const underpowered = gauge(
    'canary_gate.check.underpowered',
    '1 when the check could not detect a regression of its configured size within the horizon at the current traffic (the gate is blind to it), else 0.',
  );
  const detection = gauge(
    'canary_gate.check.detection_time_seconds',
    "Expected time to detect a regression of the check's configured size at the current traffic, seconds (absent when never).",
    's',
  );
  const state = gauge('canary_gate.state', 'Rollback controller state: 0 healthy, 1 breaching, 2 rolled_back.');
  const breaches = gauge('canary_gate.consecutive_breaches', 'Failing evaluations in a row.');
  const evaluations = counter('canary_gate.evaluations', 'Evaluations made by this sidecar while it held the lease, by verdict.');
  const warnings = counter(
    'canary_gate.warnings',
    'Evaluations with at least one check at warn, or a traffic share that contradicts the flag.',
  );
  const rollbacks = counter('canary_gate.rollbacks', 'Rollback decisions written to Redis by this sidecar.');
  const held = counter(
    'canary_gate.evaluations_held',
    'Evaluations that could not read the fleet window from Redis and held without a verdict (policy.noData.redisUnreachable hold).',
  );
  const redisErrors = counter('canary_gate.redis_errors', 'Redis commands or pipelines that failed or timed out.');
  const corrupt = counter(
    'canary_gate.payloads_corrupt',
    'Fleet slot payloads skipped because they did not decode, were implausible, or were too long to fetch.',
  );
  const keysSkipped = counter(
    'canary_gate.redis_keys_skipped',
    'Fleet slot keys skipped because they held another type than a hash, or more than 10,000 fields (written by another client).',
  );
  const dropped = counter('canary_gate.slots_dropped', 'Sealed slots dropped unpublished (buffer full while Redis was away, or expired).');
  const lease = gauge('canary_gate.lease_holder', '1 when this sidecar holds the evaluator lease, else 0.');
  const rejected = counter(
    'canary_gate.proxy.rejected',
    'Requests refused rather than forwarded, by reason: by the HTTP parser (431, 408, 400), by the proxy (400 bad_request), turned away after proxy.queueTimeout (503 overloaded), or cut for a slow body (408 body_timeout).',
  );
  const tlsReloads = counter(
    'canary_gate.proxy.tls.reloads',
    'Changes of proxy.tls.certFile / keyFile, by result: reloaded (new connections get the new certificate) or failed (the pair did not check out; the previous certificate stays, the problem is logged).',
  );
  const tlsExpiry = gauge(
    'canary_gate.proxy.tls.certificate_expiry_timestamp_seconds',
    "notAfter of the certificate the TLS port serves to new connections, Unix time in seconds (cert-manager's certmanager_certificate_expiration_timestamp_seconds).",
  );
  const notifySent = counter('canary_gate.notifications.sent', 'Notifications delivered to a sink (a 2xx answer), by sink.');
  const notifyFailed = counter(
    'canary_gate.notifications.failed',
    'Notification delivery attempts that failed (no answer, a timeout, a non-2xx status), by sink; each is logged.',
  );
  const notifyDropped = counter(
    'canary_gate.notifications.dropped',
    'Notifications given up, by sink and reason (queue_full, rejected, retries_exhausted, shutdown).',
  );
  const notifyQueued = gauge('canary_gate.notifications.queued', "Notifications waiting in a sink's queue, by sink.");
  const integration = counter(
    'canary_gate.integration.requests',
    'Requests to the Argo Rollouts and Flagger endpoints, by endpoint and answered status (400: a malformed request).',
  );
  const rolloutWeight = gauge('canary_gate.rollout.weight_percent', "The rollout's canary weight, percent 0..100 (lease holder).");
  const rolloutStep = gauge('canary_gate.rollout.step', "The rollout's 1-based step in its plan (lease holder).");
  const rolloutStatus = gauge(
    'canary_gate.rollout.status',
    "1 for the rollout's current status, 0 for the others (progressing, paused, completed, rolled_back, aborted; lease holder).",
  );
  const rolloutNeeded = gauge(
    'canary_gate.rollout.requests_needed',
    'Canary requests still needed at this weight before the next promotion (absent when they cannot be gathered at this traffic).',
  );
  const rolloutTransitions = counter(
    'canary_gate.rollout.transitions',
    "Rollout transitions this sidecar wrote or read as lease holder (an operator's), by kind: started, promoted, paused, resumed, completed, aborted, rolled_back.",
  );

  meter.addBatchObservableCallback(
    (r) => {
      const s = stats();
      const version = { service_version: s.version };
      const window = (figures: VersionFigures, role: string, scope: string): void => {
        const labels = { role, scope, service_version: figures.version };
        for (const [q, ms] of [
          ['0.5', figures.p50Ms],
          ['0.95', figures.p95Ms],
          ['0.99', figures.p99Ms],
        ] as const) {
          if (Number.isFinite(ms)) r.observe(latency, ms / 1000, { ...labels, quantile: q });
        }
        if (Number.isFinite(figures.errorRatio)) r.observe(errorRatio, figures.errorRatio, labels);
        r.observe(rps, figures.requestsPerSecond, labels);
        r.observe(samples, figures.requests, labels);
      };
      r.observe(requests, s.requests, version);
      r.observe(errors, s.errors, version);
      if (s.pod !== null) {
        window({ ...s.pod, p50Ms: s.pod.p50Us / 1000, p95Ms: s.pod.p95Us / 1000, p99Ms: s.pod.p99Us / 1000 }, s.role, 'pod');
      }
      if (s.latest !== null) {
        window(s.latest.baseline, 'baseline', 'fleet');
        window(s.latest.canary, 'canary', 'fleet');
        for (const c of s.latest.checks) {
          const scale = c.unit === 'ms' ? 1 / 1000 : 1;
          if (Number.isFinite(c.observed)) r.observe(observed, c.observed * scale, { check: c.check });
          if (Number.isFinite(c.threshold)) r.observe(threshold, c.threshold * scale, { check: c.check });
          r.observe(result, OUTCOME_ORDER.indexOf(c.outcome), { check: c.check });
          const e = c.evidence;
          if (isSequential(e)) {
            r.observe(statistic, e.statistic, { check: c.check });
            r.observe(statisticThreshold, e.failThreshold, { check: c.check, level: 'fail' });
            r.observe(statisticThreshold, e.warnThreshold, { check: c.check, level: 'warn' });
            r.observe(underpowered, e.underpowered ? 1 : 0, { check: c.check });
            if (e.secondsToDetect !== null) r.observe(detection, e.secondsToDetect, { check: c.check });
          }
        }
      }
      r.observe(state, PHASES.indexOf(s.phase));
      r.observe(breaches, s.consecutiveBreaches);
      for (const outcome of OUTCOME_ORDER) r.observe(evaluations, s.evaluations[outcome], { verdict: outcome });
      r.observe(warnings, s.warnings);
      r.observe(rollbacks, s.rollbacks);
      r.observe(held, s.redisHolds);
      r.observe(redisErrors, s.redisErrors);
      r.observe(corrupt, s.corruptPayloads);
      r.observe(keysSkipped, s.keysSkipped ?? 0);
      r.observe(dropped, s.slotsDropped);
      r.observe(lease, s.leaseHeld ? 1 : 0);
      for (const reason of REJECTION_REASONS) r.observe(rejected, s.rejected[reason] ?? 0, { reason });
      if (s.tls) {
        r.observe(tlsReloads, s.tls.reloaded, { result: 'reloaded' });
        r.observe(tlsReloads, s.tls.failed, { result: 'failed' });
        r.observe(tlsExpiry, s.tls.notAfterMs / 1000);
      }
      for (const n of s.notifications ?? []) {
        const sink = { sink: n.sink };
        r.observe(notifySent, n.sent, sink);
        r.observe(notifyFailed, n.failed, sink);
        r.observe(notifyQueued, n.queued, sink);
        for (const [reason, count] of Object.entries(n.dropped)) r.observe(notifyDropped, count, { ...sink, reason });
      }
      for (const i of s.integrations ?? []) r.observe(integration, i.count, { endpoint: i.endpoint, status: String(i.status) });
      if (s.rollout !== undefined) {
        r.observe(rolloutWeight, s.rollout.weightPercent);
        r.observe(rolloutStep, s.rollout.step);
        for (const status of ['progressing', 'paused', 'completed', 'rolled_back', 'aborted'])
          r.observe(rolloutStatus, s.rollout.status === status ? 1 : 0, { status });
        if (s.rollout.requestsNeeded !== null) r.observe(rolloutNeeded, s.rollout.requestsNeeded);
        for (const [kind, count] of Object.entries(s.rollout.transitions)) r.observe(rolloutTransitions, count, { kind });
      }
    },
    [
      requests,
      errors,
      latency,
      errorRatio,
      rps,
      samples,
      observed,
      threshold,
      result,
      statistic,
      statisticThreshold,
      underpowered,
      detection,
      state,
      breaches,
      evaluations,
      held,
      warnings,
      rollbacks,
      redisErrors,
      corrupt,
      dropped,
      lease,
      rejected,
      tlsReloads,
      tlsExpiry,
      notifySent,
      notifyFailed,
      notifyDropped,
      notifyQueued,
      integration,
      rolloutWeight,
      rolloutStep,
      rolloutStatus,
      rolloutNeeded,
      rolloutTransitions,
    ],
  );

  return {
    recordRequest(latencyUs, method, status, outcome, route, queueWaitUs = 0, grpcStatus) {
      duration.record(latencyUs / 1_000_000, attributesOf(method, status, outcome, route, grpcStatus));
      if (queueWaitUs > 0) queueWait.record(queueWaitUs / 1_000_000, versionAttributes);
    },
    handle: endpoint.handle,
    shutdown: endpoint.shutdown,
  };
}
