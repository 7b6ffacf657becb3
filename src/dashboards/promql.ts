/**
 * The PromQL every dashboard panel is built from, in one place. Metric and label names are the contract of issue 3's
 * metrics list (README, Metrics): the dashboard tests parse every expression and check each metric name against it.
 *
 * Every selector filters on the two template variables (`namespace`, `service`), which Prometheus adds at scrape time.
 * `instance` is the join key between a sidecar's series (one scrape target per sidecar, always labelled by Prometheus).
 */

/** Template variables the dashboards define, as Grafana writes them in expressions. */
export const VAR = {
  datasource: '${datasource}',
  namespace: '$namespace',
  service: '$service',
} as const;

/** Grafana's range for rate() over counters: at least four scrape intervals. */
export const RATE_WINDOW = '$__rate_interval';

/** The matchers every selector starts with. */
const SCOPE = [`namespace=~"${VAR.namespace}"`, `service=~"${VAR.service}"`];

/**
 * A vector selector scoped to the dashboard's namespace and service.
 * @param matchers further matchers, written out (`scope="fleet"`)
 */
export function sel(metric: string, ...matchers: string[]): string {
  return `${metric}{${[...SCOPE, ...matchers].join(', ')}}`;
}

/** Per-second rate of a scoped counter over {@link RATE_WINDOW}. */
export function rate(metric: string, ...matchers: string[]): string {
  return `rate(${sel(metric, ...matchers)}[${RATE_WINDOW}])`;
}

/** Increase of a scoped counter over {@link RATE_WINDOW}: 0, not empty, when nothing happened. */
export function increase(metric: string, ...matchers: string[]): string {
  return `increase(${sel(metric, ...matchers)}[${RATE_WINDOW}])`;
}

/**
 * Keeps only the series of the sidecar that holds the evaluator lease. Every sidecar exports its controller state;
 * the holder's is the fleet's (README, Metrics).
 */
export function onLeaseHolder(expr: string): string {
  return `(${expr}) and on (instance) (${sel('canary_gate_lease_holder')} == 1)`;
}

/** A scoped selector kept to the lease holder's series: the fleet's verdict, state and checks. */
export function holder(metric: string, ...matchers: string[]): string {
  return onLeaseHolder(sel(metric, ...matchers));
}

/** Requests per second of a scoped counter, summed per version. */
export function perVersion(metric: string): string {
  return `sum by (service_version) (${rate(metric)})`;
}

/**
 * A quantile of http.server.request.duration per version, estimated by Prometheus from the histogram buckets
 * (linear interpolation inside a bucket: coarse between 0.25 s and 0.5 s, 0.5 s and 0.75 s).
 */
export function durationQuantile(quantile: number): string {
  return `histogram_quantile(${quantile}, sum by (service_version, le) (${rate('http_server_request_duration_bucket')}))`;
}
