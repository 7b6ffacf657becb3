/**
 * The bundled dashboards: built from TypeScript with the Grafana Foundation SDK, written as JSON to `dashboards/` by
 * `canary-gate dashboards --out dashboards/` and committed. A test regenerates them and compares bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { canaryOverview } from './canary-overview.ts';
import { sidecarHealth } from './sidecar-health.ts';

/** File name (in the output folder) and the built dashboard model, in a fixed order. */
export interface RenderedDashboard {
  readonly file: string;
  readonly model: dashboard.Dashboard;
}

/** Builds every bundled dashboard. Pure: the same code gives the same models. */
export function buildDashboards(): RenderedDashboard[] {
  return [
    { file: 'canary-overview.json', model: canaryOverview().build() },
    { file: 'sidecar-health.json', model: sidecarHealth().build() },
  ];
}

/** The JSON text written for a dashboard: two-space indent, trailing newline, stable key order from the SDK. */
export const dashboardJson = (model: dashboard.Dashboard): string => `${JSON.stringify(model, null, 2)}\n`;

/**
 * Writes every dashboard as `<out>/<file>`, creating the folder.
 * @returns the paths written
 * @throws the file system's error when the folder cannot be written
 */
export async function writeDashboards(out: string): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  for (const { file, model } of buildDashboards()) {
    const path = join(out, file);
    await writeFile(path, dashboardJson(model));
    written.push(path);
  }
  return written;
}

/** A panel query: the panel's title, its refId and PromQL as written (template variables unsubstituted). */
export interface PanelExpression {
  readonly dashboard: string;
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
  /** Grafana's legend format (`{{service_version}}`): the labels it names must be on every series. */
  readonly legend: string;
  /** `instant` for stat panels' instant queries, `range` otherwise. */
  readonly kind: 'instant' | 'range';
}

/** Every PromQL expression of every panel and annotation of the given dashboards. */
export function panelExpressions(dashboards: readonly RenderedDashboard[] = buildDashboards()): PanelExpression[] {
  const out: PanelExpression[] = [];
  for (const { model } of dashboards) {
    for (const panel of model.panels ?? []) {
      if (panel.type === 'row') continue;
      for (const target of (panel as dashboard.Panel).targets ?? []) {
        const t = target as { refId?: string; expr?: string; legendFormat?: string; instant?: boolean };
        if (t.expr === undefined) continue;
        const kind = t.instant ? 'instant' : 'range';
        out.push({
          dashboard: model.title ?? '',
          panel: panel.title ?? '',
          refId: t.refId ?? '',
          expr: t.expr,
          legend: t.legendFormat ?? '',
          kind,
        });
      }
    }
    for (const annotation of model.annotations?.list ?? []) {
      const a = annotation as { expr?: string; textFormat?: string };
      if (a.expr !== undefined)
        out.push({
          dashboard: model.title ?? '',
          panel: `annotation: ${annotation.name}`,
          refId: 'Anno',
          expr: a.expr,
          legend: a.textFormat ?? '',
          kind: 'range',
        });
    }
  }
  return out;
}
