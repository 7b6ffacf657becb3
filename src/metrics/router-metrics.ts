/**
 * Every metric the router (`canary-gate route`) exports, owned here as GateMetrics owns the sidecar's, with the same
 * conventions: OpenTelemetry instruments read at scrape time, served with prom-client's Node.js runtime metrics as one
 * Prometheus text response (prometheus-endpoint.ts), the version label `service_version`, counters suffixed `_total`
 * by the exporter, units in the name. README lists them all.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import { createPrometheusEndpoint } from './prometheus-endpoint.ts';

/** Upstream failures the router counts, as forwardRequest reports them (src/proxy/outcome.ts). */
export const ROUTER_FAILURES = ['connect_error', 'reset', 'timeout'] as const;
export type RouterFailure = (typeof ROUTER_FAILURES)[number];

/** One version's traffic through the router since start. */
export interface RoutedVersion {
  /** The version's name (config versions.baseline or versions.canary). */
  readonly version: string;
  /** Requests sent to it. */
  readonly requests: number;
  /** Of those, the ones whose upstream failed, by failure. */
  readonly failures: Readonly<Record<RouterFailure, number>>;
}

/** What the router counts; read at every scrape. Counters are monotonic since start. */
export interface RouterStats {
  /** The weight requests are routed by, the canary's percentage 0..100. */
  readonly weightPercent: number;
  /** True while the flag cannot be read (the weight is the last known one). */
  readonly stale: boolean;
  readonly baseline: RoutedVersion;
  readonly canary: RoutedVersion;
  /** Flag reads started, by trigger. */
  readonly reads: Readonly<Record<'poll' | 'event', number>>;
  /** Flag reads that failed. */
  readonly readFailures: number;
}

export interface RouterMetrics {
  /** Serves the Prometheus text exposition (mount on GET /metrics). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

/**
 * @param stats read at every scrape; must be cheap and must not throw
 * @param identity resource of `target_info`: the gated service and this router instance
 */
export function createRouterMetrics(stats: () => RouterStats, identity: { service: string; instance: string }): RouterMetrics {
  const endpoint = createPrometheusEndpoint(identity);
  const meter = endpoint.meter;
  const weight = meter.createObservableGauge('canary_gate.router.weight_percent', {
    description: "The canary's traffic percentage (0..100) the router routes by: the flag as last read.",
  });
  const stale = meter.createObservableGauge('canary_gate.router.weight_stale', {
    description: '1 while the flag cannot be read from Redis (the router keeps the last known weight), else 0.',
  });
  const requests = meter.createObservableCounter('canary_gate.router.requests', {
    description: 'Requests the router sent to each version.',
  });
  const failures = meter.createObservableCounter('canary_gate.router.upstream_failures', {
    description: "Requests whose version's upstream failed (connect error, reset, timeout), by version and error type.",
  });
  const reads = meter.createObservableCounter('canary_gate.router.flag_reads', {
    description: 'Reads of the flag, by trigger (poll, event).',
  });
  const readFailures = meter.createObservableCounter('canary_gate.router.flag_read_failures', {
    description: 'Reads of the flag that failed (Redis unreachable or too slow).',
  });

  meter.addBatchObservableCallback(
    (r) => {
      const s = stats();
      r.observe(weight, s.weightPercent);
      r.observe(stale, s.stale ? 1 : 0);
      for (const v of [s.baseline, s.canary]) {
        r.observe(requests, v.requests, { service_version: v.version });
        for (const failure of ROUTER_FAILURES)
          r.observe(failures, v.failures[failure], { service_version: v.version, [ATTR_ERROR_TYPE]: failure });
      }
      r.observe(reads, s.reads.poll, { trigger: 'poll' });
      r.observe(reads, s.reads.event, { trigger: 'event' });
      r.observe(readFailures, s.readFailures);
    },
    [weight, stale, requests, failures, reads, readFailures],
  );

  return { handle: endpoint.handle, shutdown: endpoint.shutdown };
}
