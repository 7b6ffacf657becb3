/**
 * The committed dashboards are what the code generates, byte for byte; every PromQL expression of every panel and
 * alert rule parses (Prometheus' own Lezer grammar) and names only metrics of the README's contract; every panel has
 * a datasource, a unit and a place on the grid; the provisioning files mount what is committed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildDashboards, dashboardJson, panelExpressions } from '../../src/dashboards/index.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DASHBOARDS = join(ROOT, 'dashboards');
const run = promisify(execFile);

/** Grafana's variables replaced by values of the right syntax, so that the expression is plain PromQL. */
const plain = (expr: string): string =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '1h').replaceAll('$namespace', 'ns').replaceAll('$service', 'svc');

/** Parses PromQL; returns the syntax errors' positions and the metric names it selects. */
function promql(expr: string): { errors: number[]; metrics: string[] } {
  const errors: number[] = [];
  const metrics: string[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') metrics.push(expr.slice(node.from, node.to));
    },
  });
  return { errors, metrics };
}

/** Metric names the README's Metrics section lists (backticked), the contract of every query. */
async function contract(): Promise<Set<string>> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Metrics'), readme.indexOf('\n## ', readme.indexOf('## Metrics') + 1));
  return new Set([...section.matchAll(/`([a-z_][a-z0-9_]*)`/g)].map((m) => m[1] as string));
}
const listed = (names: Set<string>, metric: string): boolean =>
  metric === 'up' || names.has(metric) || names.has(metric.replace(/_(bucket|sum|count)$/, ''));

describe('dashboards as code', () => {
  it('regenerates byte-identical JSON to what is committed, through the CLI as users run it', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cg-dash-'));
    try {
      const { stdout } = await run(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'src/cli/main.ts'), 'dashboards', '--out', out]);
      expect(stdout).toContain('sidecar-health.json');
      const written = (await readdir(out)).sort();
      expect(written).toEqual(
        buildDashboards()
          .map((d) => d.file)
          .sort(),
      );
      for (const file of written) {
        expect(await readFile(join(out, file), 'utf8'), `${file}: run npm run dashboards and commit`).toBe(
          await readFile(join(DASHBOARDS, file), 'utf8'),
        );
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
    for (const { file, model } of buildDashboards()) expect(await readFile(join(DASHBOARDS, file), 'utf8')).toBe(dashboardJson(model));
  });

  it('every panel and annotation expression parses as PromQL and selects only metrics the README lists', async () => {
    const names = await contract();
    const expressions = panelExpressions();
    expect(expressions.length).toBeGreaterThanOrEqual(25);
    for (const e of expressions) {
      const { errors, metrics } = promql(plain(e.expr));
      expect(errors, `${e.panel} [${e.refId}]: ${e.expr}`).toEqual([]);
      expect(metrics.length, `${e.panel}: selects no metric`).toBeGreaterThan(0);
      for (const m of metrics) expect(listed(names, m), `${e.panel}: ${m} is not in the README's metrics table`).toBe(true);
      expect(e.expr, `${e.panel} must filter on the template variables`).toMatch(/namespace=~"\$namespace", service=~"\$service"/);
    }
  });

  it('the parser check catches a broken expression and an unlisted metric', async () => {
    expect(promql('sum by (service_version (rate(x[1m]))').errors.length).toBeGreaterThan(0);
    expect(listed(await contract(), 'canary_gate_made_up_total')).toBe(false);
  });

  it('every panel has the datasource variable, a unit, a legend for each query and a place on a 24-column grid', () => {
    for (const { model } of buildDashboards()) {
      expect(model.uid).toMatch(/^canary-gate-/);
      expect(model.templating?.list?.map((v) => v.name)).toEqual(['datasource', 'namespace', 'service']);
      const cells = new Set<string>();
      for (const panel of model.panels ?? []) {
        const { x, y, w, h } = panel.gridPos ?? { x: -1, y: -1, w: 0, h: 0 };
        expect(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${panel.title}: gridPos`).toBe(true);
        for (let i = x; i < x + w; i++)
          for (let j = y; j < y + h; j++) {
            expect(cells.has(`${i},${j}`), `${panel.title} overlaps another panel`).toBe(false);
            cells.add(`${i},${j}`);
          }
        if (panel.type === 'row') continue;
        const p = panel as {
          type: string;
          title?: string;
          datasource?: { uid?: string };
          fieldConfig?: { defaults?: { unit?: string } };
          targets?: Array<{ legendFormat?: string; datasource?: { uid?: string } }>;
        };
        expect(['timeseries', 'stat', 'state-timeline'], `${p.title}`).toContain(p.type);
        expect(p.datasource?.uid, `${p.title}`).toBe('${datasource}');
        expect(p.fieldConfig?.defaults?.unit, `${p.title}: unit`).toBeTruthy();
        expect(p.targets?.length, `${p.title}: queries`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) {
          expect(t.legendFormat, `${p.title}: legend`).toBeTruthy();
          expect(t.datasource?.uid).toBe('${datasource}');
        }
      }
    }
  });

  it('alert rule expressions parse and select only listed metrics', async () => {
    const names = await contract();
    const rules = (
      parse(await readFile(join(ROOT, 'config/alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    ).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual([
      'CanaryGateCanaryBreaching',
      'CanaryGateRolledBack',
      'CanaryGateSidecarDown',
      'CanaryGateRedisUnreachable',
      'CanaryGateNoCanarySamples',
      'CanaryGateUnderpowered',
      'CanaryGateNoEvaluator',
      'CanaryGateCertificateExpiresSoon',
    ]);
    for (const rule of rules) {
      const { errors, metrics } = promql(rule.expr);
      expect(errors, rule.alert).toEqual([]);
      for (const m of metrics) expect(listed(names, m), `${rule.alert}: ${m}`).toBe(true);
    }
  });

  it('the provisioning files mount the committed dashboards from a Prometheus datasource', async () => {
    const datasources = parse(await readFile(join(DASHBOARDS, 'provisioning/datasources/prometheus.yaml'), 'utf8'));
    expect(datasources).toMatchObject({ apiVersion: 1, datasources: [{ type: 'prometheus', access: 'proxy' }] });
    const providers = parse(await readFile(join(DASHBOARDS, 'provisioning/dashboards/canary-gate.yaml'), 'utf8'));
    expect(providers).toMatchObject({ apiVersion: 1, providers: [{ type: 'file', options: { path: expect.any(String) } }] });
  });
});
