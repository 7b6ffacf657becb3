/**
 * The one owner of every exported metric (flagger's `Recorder` habit). All instruments are observable: their values
 * are read from the sidecar's own counters at scrape time, so the request path pays nothing for metrics.
 *
 * OpenTelemetry names (dotted) become Prometheus names through @opentelemetry/exporter-prometheus: dots become
 * underscores, counters get `_total`, unit `s` gets `_seconds`. The version label is `service_version` everywhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE } from '@opentelemetry/semantic-conventions';
import type { Phase } from '../core/controller.ts';
import { PHASES } from '../core/controller.ts';
import { OUTCOME_ORDER, type Outcome, type Verdict } from '../core/verdict.ts';

/** What the sidecar counts; read at every scrape. Counters are monotonic since start. */
export interface GateStats {
  readonly version: string;
  readonly requests: number;
  readonly errors: number;
  readonly phase: Phase;
  readonly consecutiveBreaches: number;
  readonly evaluations: Readonly<Record<Outcome, number>>;
  readonly rollbacks: number;
  readonly redisErrors: number;
  readonly corruptPayloads: number;
  readonly slotsDropped: number;
  readonly leaseHeld: boolean;
  readonly latest: Verdict | null;
}

export interface GateMetrics {
  /** Serves the Prometheus text exposition (mount on GET /metrics). */
  handle(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

/**
 * @param stats read at every scrape; must be cheap and must not throw
 * @param identity resource of `target_info`: the gated service (`service.namespace`) and this pod (`service.instance.id`)
 */
export function createGateMetrics(stats: () => GateStats, identity: { service: string; pod: string }): GateMetrics {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'canary-gate', [ATTR_SERVICE_NAMESPACE]: identity.service, [ATTR_SERVICE_INSTANCE_ID]: identity.pod });
  const provider = new MeterProvider({ readers: [exporter], resource });
  const meter = provider.getMeter('canary-gate');

  const requests = meter.createObservableCounter('canary_gate.proxy.requests', { description: 'Requests proxied by this sidecar, by version.' });
  const errors = meter.createObservableCounter('canary_gate.proxy.errors', { description: 'Requests counted as errors (configured status classes, upstream connect failures, resets, timeouts), by version.' });
  const state = meter.createObservableGauge('canary_gate.gate.state', { description: 'Rollback controller state on this sidecar: 0 healthy, 1 breaching, 2 rolled_back.' });
  const breaches = meter.createObservableGauge('canary_gate.gate.consecutive_breaches', { description: 'Failing evaluations in a row.' });
  const evaluations = meter.createObservableCounter('canary_gate.gate.evaluations', { description: 'Evaluations made by this sidecar while it held the lease, by verdict.' });
  const rollbacks = meter.createObservableCounter('canary_gate.gate.rollbacks', { description: 'Rollback decisions written to Redis by this sidecar.' });
  const redisErrors = meter.createObservableCounter('canary_gate.redis.errors', { description: 'Redis commands or pipelines that failed or timed out.' });
  const corrupt = meter.createObservableCounter('canary_gate.fleet.payloads_corrupt', { description: 'Fleet slot payloads skipped because they did not decode.' });
  const dropped = meter.createObservableCounter('canary_gate.fleet.slots_dropped', { description: 'Sealed slots dropped unpublished (buffer full while Redis was away, or expired).' });
  const lease = meter.createObservableGauge('canary_gate.lease.holder', { description: '1 when this sidecar holds the evaluator lease, else 0.' });
  const p95 = meter.createObservableGauge('canary_gate.window.p95', { unit: 's', description: 'Fleet p95 latency of the latest judged window (merged HDR histogram), by role.' });
  const errorRatio = meter.createObservableGauge('canary_gate.window.error_ratio', { description: 'Fleet error ratio (0..1) of the latest judged window, by role.' });

  meter.addBatchObservableCallback(
    (r) => {
      const s = stats();
      const version = { service_version: s.version };
      r.observe(requests, s.requests, version);
      r.observe(errors, s.errors, version);
      r.observe(state, PHASES.indexOf(s.phase));
      r.observe(breaches, s.consecutiveBreaches);
      for (const outcome of OUTCOME_ORDER) r.observe(evaluations, s.evaluations[outcome], { verdict: outcome });
      r.observe(rollbacks, s.rollbacks);
      r.observe(redisErrors, s.redisErrors);
      r.observe(corrupt, s.corruptPayloads);
      r.observe(dropped, s.slotsDropped);
      r.observe(lease, s.leaseHeld ? 1 : 0);
      if (s.latest !== null) {
        for (const role of ['baseline', 'canary'] as const) {
          const f = s.latest[role];
          const labels = { role, service_version: f.version };
          if (Number.isFinite(f.p95Ms)) r.observe(p95, f.p95Ms / 1000, labels);
          if (Number.isFinite(f.errorRatio)) r.observe(errorRatio, f.errorRatio, labels);
        }
      }
    },
    [requests, errors, state, breaches, evaluations, rollbacks, redisErrors, corrupt, dropped, lease, p95, errorRatio],
  );

  return {
    handle: (req, res) => exporter.getMetricsRequestHandler(req, res),
    shutdown: () => provider.shutdown(),
  };
}
