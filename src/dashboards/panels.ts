/**
 * Shared parts of the canary-gate dashboards, built with the Grafana Foundation SDK: the datasource reference, the
 * three template variables, query and panel presets, value mappings and the default policy's numbers.
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import ms from 'ms';
import { DEFAULTS } from '../config/defaults.ts';
import { VAR } from './promql.ts';

/** Every panel and query reads from the datasource the `datasource` variable selects. */
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: VAR.datasource };

/** Tag shared by the canary-gate dashboards; the dashboard links list them by it. */
export const TAG = 'canary-gate';

/** The default policy's numbers (config/defaults.ts), for descriptions and static thresholds. */
export const POLICY = {
  relativeP95: DEFAULTS.policy.latency.relativeP95,
  absoluteP95S: ms(DEFAULTS.policy.latency.absoluteP95 as ms.StringValue) / 1000,
  relativeErrorRatio: DEFAULTS.policy.errors.relativeRatio,
  baselineFloor: DEFAULTS.policy.errors.baselineFloor,
  absoluteErrorRatio: DEFAULTS.policy.errors.absoluteRatio,
  consecutiveBreaches: DEFAULTS.policy.consecutiveBreaches,
} as const;

/** `0.005` -> `0.5 %`. */
export const percent = (ratio: number): string => `${Number((ratio * 100).toFixed(3))} %`;

/** A Prometheus query on the dashboard's datasource, in code mode. */
export function query(refId: string, expr: string, legend: string, kind: 'range' | 'instant' = 'range'): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .refId(refId)
    .expr(expr)
    .legendFormat(legend)
    .editorMode(prometheus.QueryEditorMode.Code);
  return kind === 'instant' ? q.instant() : q.range();
}

/** The datasource, namespace and service variables; `namespace` and `service` allow several values and All. */
export function variables(): Array<dashboard.DatasourceVariableBuilder | dashboard.QueryVariableBuilder> {
  const all: dashboard.VariableOption = { selected: true, text: 'All', value: '$__all' };
  const labelValues = (name: string, label: string, description: string, definition: string) =>
    new dashboard.QueryVariableBuilder(name)
      .label(label)
      .description(description)
      .datasource(DATASOURCE)
      .query(definition)
      .definition(definition)
      .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
      .sort(dashboard.VariableSort.AlphabeticalAsc)
      .multi(true)
      .includeAll(true)
      .allValue('.*')
      .current(all);
  return [
    new dashboard.DatasourceVariableBuilder('datasource')
      .label('Data source')
      .description('The Prometheus that scrapes the canary-gate sidecars.')
      .type('prometheus'),
    labelValues(
      'namespace',
      'Namespace',
      'Kubernetes namespace of the gated pods (added by Prometheus at scrape time).',
      'label_values(canary_gate_proxy_requests_total, namespace)',
    ),
    labelValues(
      'service',
      'Service',
      "The gated service (the pods' app label), whose baseline and canary versions the sidecars compare.",
      `label_values(canary_gate_proxy_requests_total{namespace=~"${VAR.namespace}"}, service)`,
    ),
  ];
}

/** A dashboard with the settings both share: fixed uid, tags, variables, links to the other dashboard, read-only. */
export function dashboardBase(uid: string, title: string, description: string): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags([TAG])
    .readonly()
    .timezone('browser')
    .time({ from: 'now-30m', to: 'now' })
    .refresh('10s')
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .variables(variables())
    .link(
      new dashboard.DashboardLinkBuilder('canary-gate')
        .type(dashboard.DashboardLinkType.Dashboards)
        .tags([TAG])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    );
}

/** A row that starts a new band of panels; the panels after it are added to the dashboard, not to the row. */
export const row = (title: string): dashboard.RowBuilder => new dashboard.RowBuilder(title);

/** A list legend under the panel, without calculations. */
const bottomLegend = (): common.VizLegendOptionsBuilder =>
  new common.VizLegendOptionsBuilder()
    .showLegend(true)
    .displayMode(common.LegendDisplayMode.List)
    .placement(common.LegendPlacement.Bottom)
    .calcs([]);

/** A time series panel with a legend and a shared, sorted tooltip. */
export function timeseriesPanel(title: string, description: string, unit: string): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .span(12)
    .height(8)
    .lineWidth(1)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(bottomLegend())
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
}

/**
 * A time series panel of quantities that cannot go below zero (rates, counts, bytes), with one query per
 * `[expr, legend]` pair, refIds A, B, ... in order.
 */
export function seriesPanel(
  title: string,
  description: string,
  unit: string,
  ...targets: Array<[expr: string, legend: string]>
): timeseries.PanelBuilder {
  const panel = timeseriesPanel(title, description, unit).min(0);
  for (const [i, [expr, legend]] of targets.entries()) panel.withTarget(query(String.fromCharCode(65 + i), expr, legend));
  return panel;
}

/** A stat panel showing each series' last value. */
export function statPanel(title: string, description: string, unit: string): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .span(6)
    .height(5)
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Background)
    .textMode(common.BigValueTextMode.Auto)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
}

/** A state timeline: one band per series, coloured by its value mappings. */
export function stateTimelinePanel(title: string, description: string, unit: string): statetimeline.PanelBuilder {
  return new statetimeline.PanelBuilder()
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .span(12)
    .height(6)
    .showValue(common.VisibilityMode.Auto)
    .mergeValues(true)
    .rowHeight(0.9)
    .fillOpacity(80)
    .legend(bottomLegend())
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Single).sort(common.SortOrder.None));
}

/** Thresholds from a base colour and `[from, colour]` steps, absolute values. */
export function thresholds(base: string, ...steps: Array<[number, string]>): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...steps.map(([value, color]) => ({ value, color }))]);
}

/** Value-to-text mappings: each value gets a text and a colour, in the order given. */
function valueMappings(...entries: Array<[value: number, text: string, color: string]>): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  entries.forEach(([value, text, color], index) => {
    options[String(value)] = { text, color, index };
  });
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

/** canary_gate_state: 0 healthy, 1 breaching, 2 rolled back (the controller's declared order). */
export const STATE_MAPPINGS = valueMappings([0, 'healthy', 'green'], [1, 'breaching', 'orange'], [2, 'rolled back', 'red']);

/** canary_gate_check_result: the verdict outcomes in their declared best-to-worst order. */
export const RESULT_MAPPINGS = valueMappings([0, 'pass', 'green'], [1, 'warn', 'yellow'], [2, 'inconclusive', 'blue'], [3, 'fail', 'red']);

/** canary_gate_check_underpowered: 1 when the check is blind to its configured regression at this traffic. */
export const POWER_MAPPINGS = valueMappings([0, 'sees', 'green'], [1, 'blind', 'purple']);

/** canary_gate_rollout_status: the status whose series is 1 (ROLLOUT_STATUSES order, 0-based), as the row's query numbers it. */
export const ROLLOUT_MAPPINGS = valueMappings(
  [0, 'progressing', 'blue'],
  [1, 'paused', 'yellow'],
  [2, 'completed', 'green'],
  [3, 'rolled back', 'red'],
  [4, 'aborted', 'orange'],
);

/** canary_gate_lease_holder: 1 on the evaluator. */
export const LEASE_MAPPINGS = valueMappings([0, 'follower', 'transparent'], [1, 'lease holder', 'blue']);

/** Draws a query's series as a dashed red line: the policy's thresholds. */
export const THRESHOLD_LINE: dashboard.DynamicConfigValue[] = [
  { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
  { id: 'custom.lineWidth', value: 2 },
  { id: 'custom.fillOpacity', value: 0 },
  { id: 'color', value: { mode: dashboard.FieldColorModeId.Fixed, fixedColor: 'red' } },
];
