/**
 * One Prometheus text endpoint, as the sidecar and the router serve it: the OpenTelemetry metrics of one
 * MeterProvider (collected through the Prometheus exporter's reader, never its own server) followed by prom-client's
 * default Node.js runtime metrics (an explicit registry, never the global one).
 *
 * The resource is `target_info`: `service.name` canary-gate, the gated service as `service.namespace` and this process
 * as `service.instance.id`. No timestamps, no resource labels copied onto series, no scope info.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_NAMESPACE } from '@opentelemetry/semantic-conventions';
import { collectDefaultMetrics, Registry } from 'prom-client';

export interface PrometheusEndpoint {
  /** Where the owner creates its instruments. */
  readonly meter: Meter;
  /** Serves the Prometheus text exposition (mount on GET /metrics); 500 with a comment line when collection fails. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

/**
 * @param identity the gated service (`service.namespace`) and this process (`service.instance.id`: the pod's name)
 */
export function createPrometheusEndpoint(identity: { service: string; instance: string }): PrometheusEndpoint {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  // prefix '', no timestamps, no resource labels copied onto series, target_info kept, scope info left out.
  const serializer = new PrometheusSerializer('', false, undefined, false, true);
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: 'canary-gate',
    [ATTR_SERVICE_NAMESPACE]: identity.service,
    [ATTR_SERVICE_INSTANCE_ID]: identity.instance,
  });
  const provider = new MeterProvider({ readers: [exporter], resource });
  const runtime = new Registry();
  collectDefaultMetrics({ register: runtime });
  return {
    meter: provider.getMeter('canary-gate'),
    handle(_req, res) {
      void Promise.all([exporter.collect(), runtime.metrics()]).then(
        ([{ resourceMetrics }, runtimeText]) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
          res.end(`${serializer.serialize(resourceMetrics)}\n${runtimeText}`);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`# metrics collection failed: ${err.message}\n`);
        },
      );
    },
    shutdown: () => provider.shutdown(),
  };
}
