/**
 * The sidecar health dashboard: what the sidecars cost and whether they can do their job. Up, CPU per proxied
 * request, memory, event-loop lag, GC, Redis errors, corrupt payloads, dropped slots, refused requests and the upstream
 * queue's wait, and the TLS certificate's time left, per pod.
 */
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { dashboardBase, query, row, seriesPanel, statPanel, thresholds } from './panels.ts';
import { rate, sel } from './promql.ts';

export const SIDECAR_HEALTH_UID = 'canary-gate-sidecar-health';

/** Every sidecar's own series, per pod. */
const perPod = (metric: string, ...matchers: string[]): string => `sum by (pod) (${rate(metric, ...matchers)})`;

/** The sidecar health dashboard, ready to build. */
export function sidecarHealth(): dashboard.DashboardBuilder {
  return dashboardBase(
    SIDECAR_HEALTH_UID,
    'canary-gate: sidecar health',
    'The cost of the sidecars next to what they measure, and the faults that keep them from judging.',
  )
    .withRow(row('Sidecars'))
    .withPanel(
      statPanel('Sidecars up', 'Scrape targets answering /metrics.', 'none')
        .thresholds(thresholds('red', [1, 'green']))
        .withTarget(query('A', `sum (${sel('up')})`, 'up', 'instant')),
    )
    .withPanel(
      statPanel('Sidecars down', 'Scrape targets not answering /metrics.', 'none')
        .thresholds(thresholds('green', [1, 'red']))
        .withTarget(query('A', `count (${sel('up')} == 0) or vector(0)`, 'down', 'instant')),
    )
    .withPanel(
      statPanel('Proxied requests per second', 'All versions, all sidecars.', 'reqps')
        .thresholds(thresholds('blue'))
        .withTarget(query('A', `sum (${rate('canary_gate_proxy_requests_total')})`, 'rps', 'instant')),
    )
    .withPanel(
      statPanel('Lease holders', 'Sidecars holding the evaluator lease: 1 is right, 0 means nothing judges.', 'none')
        .thresholds(thresholds('red', [1, 'green'], [2, 'red']))
        .withTarget(query('A', `sum (${sel('canary_gate_lease_holder')})`, 'holders', 'instant')),
    )
    .withRow(row('Proxy overhead'))
    .withPanel(
      seriesPanel(
        'CPU seconds per 1k proxied requests',
        "The sidecar's CPU time per thousand requests it proxied: its cost per request.",
        's',
        [`${perPod('process_cpu_seconds_total')} / ${perPod('canary_gate_proxy_requests_total')} * 1000`, '{{pod}}'],
      ),
    )
    .withPanel(seriesPanel('CPU', 'CPU used by each sidecar, in cores.', 'percentunit', [perPod('process_cpu_seconds_total'), '{{pod}}']))
    .withRow(row('Runtime'))
    .withPanel(
      seriesPanel(
        'Event-loop lag p99',
        'Node.js event-loop delay, p99 over the sampling interval: a busy sidecar adds it to every request.',
        's',
        [sel('nodejs_eventloop_lag_p99_seconds'), '{{pod}}'],
      ),
    )
    .withPanel(
      seriesPanel(
        'Resident memory',
        'RSS of each sidecar: flat under steady load.',
        'bytes',
        [sel('process_resident_memory_bytes'), 'rss {{pod}}'],
        [`sum by (pod) (${sel('nodejs_heap_size_used_bytes')})`, 'heap used {{pod}}'],
      ),
    )
    .withPanel(
      seriesPanel('GC time', 'Seconds per second spent in garbage collection, per pod and kind.', 'percentunit', [
        `sum by (pod, kind) (${rate('nodejs_gc_duration_seconds_sum')})`,
        '{{pod}} {{kind}}',
      ]),
    )
    .withPanel(
      seriesPanel('Active handles', 'Sockets, timers and other libuv handles held open.', 'none', [
        sel('nodejs_active_handles_total'),
        '{{pod}}',
      ]),
    )
    .withRow(row('Faults'))
    .withPanel(
      seriesPanel('Redis errors', 'Redis commands that failed or timed out, per second. Slots are buffered meanwhile.', 'ops', [
        perPod('canary_gate_redis_errors_total'),
        '{{pod}}',
      ]),
    )
    .withPanel(
      seriesPanel(
        'Skipped payloads and dropped slots',
        'Fleet payloads that did not decode, and sealed slots dropped unpublished, per second.',
        'ops',
        [perPod('canary_gate_payloads_corrupt_total'), 'corrupt {{pod}}'],
        [perPod('canary_gate_slots_dropped_total'), 'dropped {{pod}}'],
      ),
    )
    .withPanel(
      seriesPanel(
        'Refused requests',
        'Requests refused rather than forwarded, per reason: by the HTTP parser (431, 408, 400), by the proxy (bad_request), cut for a slow body (body_timeout), turned away after proxy.queueTimeout (overloaded: the sidecar is saturated).',
        'reqps',
        [`sum by (reason) (${rate('canary_gate_proxy_rejected_total')})`, '{{reason}}'],
      ),
    )
    .withPanel(
      seriesPanel(
        'Upstream queue wait p95',
        'Requests that waited for an upstream connection (all proxy.connections busy): p95 of their wait, per pod. Never part of the judged latency; at proxy.queueTimeout they get 503 overloaded.',
        's',
        [`histogram_quantile(0.95, sum by (pod, le) (${rate('canary_gate_proxy_queue_wait_seconds_bucket')}))`, '{{pod}}'],
      ),
    )
    .withPanel(
      seriesPanel(
        'TLS certificate time left',
        'Time until the certificate each TLS port serves expires (sidecars with proxy.tls only). A renewal shows as a jump up; a line that keeps falling past cert-manager\'s renewal point means the renewal was not taken up: see canary_gate_proxy_tls_reloads_total{result="failed"} and the sidecar\'s log.',
        's',
        [`min by (pod) (${sel('canary_gate_proxy_tls_certificate_expiry_timestamp_seconds')}) - time()`, '{{pod}}'],
      ),
    );
}
