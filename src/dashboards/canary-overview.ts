/**
 * The canary overview dashboard: what an operator watches while a rollout runs. Traffic split and rate per version,
 * p95/p99 per version with the policy's thresholds, error ratio per version with its thresholds, the gate's exact
 * fleet p95 beside Prometheus' bucket estimate, the controller's state and checks over time, rollback annotations,
 * consecutive breaches and the lease holder; and the rollout's progress (weight and step over time, status, the canary
 * requests still needed, promotions and rollbacks as annotations).
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import {
  DATASOURCE,
  LEASE_MAPPINGS,
  POLICY,
  POWER_MAPPINGS,
  RESULT_MAPPINGS,
  ROLLOUT_MAPPINGS,
  STATE_MAPPINGS,
  THRESHOLD_LINE,
  dashboardBase,
  percent,
  query,
  row,
  seriesPanel,
  statPanel,
  stateTimelinePanel,
  thresholds,
  timeseriesPanel,
} from './panels.ts';
import { durationQuantile, holder, increase, perVersion, rate, sel } from './promql.ts';

export const CANARY_OVERVIEW_UID = 'canary-gate-overview';

/** Share of requests per version, 0..1: the traffic split the router applies, as the sidecars saw it. */
const TRAFFIC_SHARE = `${perVersion('canary_gate_proxy_requests_total')} / ignoring (service_version) group_left () sum (${rate('canary_gate_proxy_requests_total')})`;
const ERROR_RATIO = `${perVersion('canary_gate_proxy_errors_total')} / ${perVersion('canary_gate_proxy_requests_total')}`;

function latencyPanel(quantile: number): ReturnType<typeof timeseriesPanel> {
  const q = `p${Math.round(quantile * 100)}`;
  const panel = timeseriesPanel(
    `${q} latency per version`,
    `${q} of http.server.request.duration per version, estimated by Prometheus from the exported buckets.` +
      (quantile === 0.95
        ? ` Dashed: the gate's failing thresholds for the canary's p95 (${POLICY.relativeP95} × baseline p95, and ${POLICY.absoluteP95S} s absolute).`
        : ''),
    's',
  ).withTarget(query('A', durationQuantile(quantile), `${q} {{service_version}}`));
  if (quantile !== 0.95) return panel;
  return panel
    .withTarget(query('B', holder('canary_gate_check_threshold', 'check=~"latency_p95_.*"'), 'threshold {{check}}'))
    .overrideByQuery('B', THRESHOLD_LINE);
}

function exactVersusEstimate(): ReturnType<typeof timeseriesPanel> {
  return timeseriesPanel(
    'Fleet p95: the gate (exact) and Prometheus (buckets)',
    'Solid: the p95 the gate judged, from the merged HDR histograms of every sidecar over the window (relative error ' +
      'under 0.1 %). Dashed: histogram_quantile over the exported buckets, linear inside a bucket. They differ by the ' +
      'bucket width; the gate decides on the exact one.',
    's',
  )
    .withTarget(
      query('A', holder('canary_gate_window_latency_seconds', 'scope="fleet"', 'quantile="0.95"'), 'gate {{role}} ({{service_version}})'),
    )
    .withTarget(query('B', durationQuantile(0.95), 'prometheus {{service_version}}'))
    .overrideByQuery('B', [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [6, 6] } }]);
}

function errorRatioPanel(): ReturnType<typeof timeseriesPanel> {
  return timeseriesPanel(
    'Error ratio per version',
    `Errors / requests per version over the rate window. Dashed: the gate's failing thresholds for the canary: ` +
      `${POLICY.relativeErrorRatio} × the baseline's (floored at ${percent(POLICY.baselineFloor)}) and ${percent(POLICY.absoluteErrorRatio)} absolute.`,
    'percentunit',
  )
    .min(0)
    .withTarget(query('A', ERROR_RATIO, '{{service_version}}'))
    .withTarget(query('B', holder('canary_gate_check_threshold', 'check=~"error_ratio_.*"'), 'threshold {{check}}'))
    .overrideByQuery('B', THRESHOLD_LINE);
}

/** Rollback decisions as annotations on every time panel: a rise of canary_gate_rollbacks_total. */
function rollbackAnnotation(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Rollbacks')
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor('red')
    .target(new prometheus.DataqueryBuilder().refId('Anno').expr(`${increase('canary_gate_rollbacks_total')} > 0`))
    .expr(`${increase('canary_gate_rollbacks_total')} > 0`)
    .titleFormat('rollback')
    .textFormat('{{pod}} wrote the rollback flag')
    .step('10s');
}

/** Rollout transitions (promotions, pauses, completions, the end of a rolled-back one) as annotations, by kind. */
function promotionAnnotation(): dashboard.AnnotationQueryBuilder {
  const expr = `sum by (kind, pod) (${increase('canary_gate_rollout_transitions_total')}) > 0`;
  return new dashboard.AnnotationQueryBuilder()
    .name('Rollout transitions')
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor('blue')
    .target(new prometheus.DataqueryBuilder().refId('Anno').expr(expr))
    .expr(expr)
    .titleFormat('rollout {{kind}}')
    .textFormat('rollout {{kind}} ({{pod}})')
    .step('10s');
}

/**
 * The status whose series is 1, as its index in ROLLOUT_STATUSES (0 progressing .. 4 aborted): one series for a state
 * timeline instead of five.
 */
const ROLLOUT_STATUS = `max (
  (${holder('canary_gate_rollout_status', 'status="progressing"')}) * 0
  or (${holder('canary_gate_rollout_status', 'status="paused"')}) * 1
  or (${holder('canary_gate_rollout_status', 'status="completed"')}) * 2
  or (${holder('canary_gate_rollout_status', 'status="rolled_back"')}) * 3
  or (${holder('canary_gate_rollout_status', 'status="aborted"')}) * 4
)`;

/** The canary overview dashboard, ready to build. */
export function canaryOverview(): dashboard.DashboardBuilder {
  return dashboardBase(
    CANARY_OVERVIEW_UID,
    'canary-gate: canary overview',
    'Baseline against canary as the sidecars measure them, and what the gate decided. Pick the service; the lease ' +
      "holder's series carry the fleet verdict.",
  )
    .annotation(rollbackAnnotation())
    .annotation(promotionAnnotation())
    .withRow(row('Rollout progress'))
    .withPanel(
      timeseriesPanel(
        'Rollout weight and step',
        "The rollout's canary weight (percent, the flag it wrote) and its step in the plan, on the lease holder. " +
          'Rollout transitions (blue: promoted, paused, completed, ...) and rollbacks (red) are annotations.',
        'none',
      )
        .min(0)
        .withTarget(query('A', `max (${holder('canary_gate_rollout_weight_percent')})`, 'weight %'))
        .withTarget(query('B', `max (${holder('canary_gate_rollout_step')})`, 'step')),
    )
    .withPanel(
      stateTimelinePanel(
        'Rollout status',
        'progressing (the lease holder promotes on evidence), paused (a person or a pause step), completed, rolled back ' +
          '(the latch ended it; a reset does not restart it) or aborted.',
        'none',
      )
        .mappings(ROLLOUT_MAPPINGS)
        .withTarget(query('A', ROLLOUT_STATUS, 'status')),
    )
    .withPanel(
      timeseriesPanel(
        'Evidence still needed to promote',
        'Canary requests the current weight still needs before the next promotion: enough that each check would have ' +
          'detected its configured regression at this traffic. Absent when the checks cannot gather it at this traffic ' +
          '(underpowered).',
        'none',
      )
        .min(0)
        .withTarget(query('A', `max (${holder('canary_gate_rollout_requests_needed')})`, 'canary requests needed')),
    )
    .withRow(row('Verdict'))
    .withPanel(
      stateTimelinePanel(
        'Gate state',
        'The rollback controller: healthy, breaching (failing evaluations in a row) or rolled back (latched until reset).',
        'none',
      )
        .mappings(STATE_MAPPINGS)
        .withTarget(query('A', holder('canary_gate_state'), 'state')),
    )
    .withPanel(
      stateTimelinePanel('Checks', 'Each check of the latest verdict: pass, warn, inconclusive (too few samples) or fail.', 'none')
        .mappings(RESULT_MAPPINGS)
        .withTarget(query('A', holder('canary_gate_check_result'), '{{check}}')),
    )
    .withPanel(
      timeseriesPanel(
        'Evidence toward a rollback',
        "Each sequential check's statistic (CUSUM of log-likelihood ratios, accumulated across slots) as a share of its " +
          'fail threshold: the check fails at 100 %. It falls back toward 0 while the canary looks healthy; dashed: the ' +
          'warning threshold.',
        'percentunit',
      )
        .min(0)
        .withTarget(
          query(
            'A',
            `(${holder('canary_gate_check_statistic')}) / ignoring (level) (${holder('canary_gate_check_statistic_threshold', 'level="fail"')})`,
            '{{check}}',
          ),
        )
        .withTarget(
          query(
            'B',
            `(${holder('canary_gate_check_statistic_threshold', 'level="warn"')}) / ignoring (level) (${holder('canary_gate_check_statistic_threshold', 'level="fail"')})`,
            'warn {{check}}',
          ),
        )
        .overrideByQuery('B', THRESHOLD_LINE),
    )
    .withPanel(
      stateTimelinePanel(
        'Blind checks (underpowered)',
        'A check is blind when, at the current traffic, a regression of its configured size would take longer than ' +
          'policy.statistics.horizon to detect: raise the canary share or the horizon, or accept that it cannot judge.',
        'none',
      )
        .mappings(POWER_MAPPINGS)
        .withTarget(query('A', holder('canary_gate_check_underpowered'), '{{check}}')),
    )
    .withPanel(
      statPanel('Consecutive breaches', `Failing evaluations in a row; the rollback is written at ${POLICY.consecutiveBreaches}.`, 'none')
        .thresholds(thresholds('green', [1, 'orange'], [POLICY.consecutiveBreaches, 'red']))
        .withTarget(query('A', holder('canary_gate_consecutive_breaches'), 'breaches', 'instant')),
    )
    .withPanel(
      statPanel('Rollbacks', 'Rollback decisions written to Redis over the dashboard range.', 'none')
        .thresholds(thresholds('green', [1, 'red']))
        .withTarget(query('A', `sum (increase(${sel('canary_gate_rollbacks_total')}[$__range]))`, 'rollbacks', 'instant')),
    )
    .withPanel(
      stateTimelinePanel('Lease holder', 'Which sidecar evaluates the fleet (holds the lease); one at a time, fenced.', 'none')
        .span(12)
        .mappings(LEASE_MAPPINGS)
        .withTarget(query('A', sel('canary_gate_lease_holder'), '{{pod}}')),
    )
    .withRow(row('Traffic'))
    .withPanel(
      timeseriesPanel(
        'Traffic split',
        'Share of requests per version as the sidecars proxied them; compare with the router weight.',
        'percentunit',
      )
        .min(0)
        .max(1)
        .withTarget(query('A', TRAFFIC_SHARE, '{{service_version}}')),
    )
    .withPanel(
      seriesPanel('Request rate per version', 'Requests per second through the sidecars, per version.', 'reqps', [
        perVersion('canary_gate_proxy_requests_total'),
        '{{service_version}}',
      ]),
    )
    .withRow(row('Latency'))
    .withPanel(latencyPanel(0.95))
    .withPanel(latencyPanel(0.99))
    .withPanel(exactVersusEstimate())
    .withPanel(
      seriesPanel(
        'Samples in the judged window',
        'Requests per role in the fleet window; below policy.minSamples a check is inconclusive.',
        'none',
        [holder('canary_gate_window_requests', 'scope="fleet"'), '{{role}} ({{service_version}})'],
      ),
    )
    .withRow(row('Errors'))
    .withPanel(errorRatioPanel())
    .withPanel(
      seriesPanel('Evaluations by verdict', 'Evaluations per second on the lease holder, by verdict.', 'ops', [
        `sum by (verdict) (${rate('canary_gate_evaluations_total')})`,
        '{{verdict}}',
      ]),
    );
}
