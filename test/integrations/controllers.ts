/**
 * What Argo Rollouts and Flagger do on the wire, replayed from their source (no controller runs here):
 *
 * - Argo Rollouts' web metric provider (argoproj/argo-rollouts 9f8d111d, metricproviders/webmetric/webmetric.go):
 *   a GET of the template's URL after `{{args.x}}` substitution, with the template's headers (Go's client adds
 *   `User-Agent: Go-http-client/1.1` and `Accept-Encoding: gzip`); a status outside 200..299 is an Error; the JSON
 *   body, through `jsonPath`, becomes `result`; utils/evaluate/evaluate.go `EvaluateResult` turns the two conditions
 *   into Successful / Failed / Inconclusive. The conditions are expr-lang there; here they are evaluated with CEL
 *   (@marcbachmann/cel-js) after checking that they use only `result.<field> == "<text>"` joined by `||`, a subset that
 *   means the same in both languages.
 * - Flagger (fluxcd/flagger 15bd6ad5, pkg/controller/webhook.go `callWebhook`): a POST of the CanaryWebhookPayload as
 *   Go's json.Marshal writes it (fields name, namespace, phase, checksum, then metadata, omitted when empty) with
 *   `Content-Type: application/json`; success is a status of at most 202, and the error is the body.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate } from '@marcbachmann/cel-js';
import { request } from 'undici';
import { parse, parseAllDocuments } from 'yaml';

export const DEPLOY = join(import.meta.dirname, '../../deploy');

/** Every document of the YAML files of a deploy/ folder, with its file name. */
export function manifests(folder: string, files: readonly string[]): Array<{ file: string; data: Record<string, any> }> {
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(DEPLOY, folder, file), 'utf8')).map((d) => ({ file, data: d.toJS() as Record<string, any> })),
  );
}

export interface ArgoMetric {
  readonly name: string;
  readonly successCondition?: string;
  readonly failureCondition?: string;
  readonly provider: {
    web: { url: string; method?: string; jsonPath?: string; timeoutSeconds?: number; headers?: Array<{ key: string; value: string }> };
  };
}

/** The shipped AnalysisTemplate and its canary-gate metric. */
export function shippedTemplate(): { template: Record<string, any>; metric: ArgoMetric } {
  const template = parse(readFileSync(join(DEPLOY, 'argo-rollouts/analysis-template.yaml'), 'utf8')) as Record<string, any>;
  return { template, metric: template.spec.metrics[0] as ArgoMetric };
}

/** Argo's `{{args.name}}` substitution (spaces inside the braces allowed, as Argo's template resolver allows). */
export function substituteArgs(text: string, args: Readonly<Record<string, string>>): string {
  return text.replace(/\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}/g, (_m, name: string) => {
    const value = args[name];
    if (value === undefined) throw new Error(`argument ${name} has no value`);
    return value;
  });
}

/** The only condition shape the template may use: one field compared with string literals, joined by `||`. */
export const PORTABLE_CONDITION = /^result\.[a-z]+ == "[a-z_]+"( \|\| result\.[a-z]+ == "[a-z_]+")*$/;

/** Evaluates one condition against `result` (CEL; see the module). */
export function condition(expression: string, result: unknown): boolean {
  if (!PORTABLE_CONDITION.test(expression)) throw new Error(`condition outside the portable subset: ${expression}`);
  const value = evaluate(expression, { result: result as Record<string, unknown> });
  if (typeof value !== 'boolean') throw new Error(`condition ${expression} gave ${String(value)}, not a boolean`);
  return value;
}

export type ArgoPhase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';

/** Argo's EvaluateResult (utils/evaluate/evaluate.go), branch for branch. */
export function evaluateResult(metric: ArgoMetric, result: unknown): ArgoPhase {
  let success = metric.successCondition ? condition(metric.successCondition, result) : false;
  let fail = metric.failureCondition ? condition(metric.failureCondition, result) : false;
  if (!metric.successCondition && !metric.failureCondition) return 'Successful';
  if (metric.successCondition && !metric.failureCondition) fail = !success;
  if (!metric.successCondition && metric.failureCondition) success = !fail;
  if (fail) return 'Failed';
  if (!success) return 'Inconclusive';
  return 'Successful';
}

/** Applies the jsonPath forms the template may use: `{$}` (the whole body) or `{$.field}`. */
function applyJsonPath(path: string | undefined, body: unknown): unknown {
  if (path === undefined || path === '{$}') return body;
  const m = /^\{\$\.([A-Za-z0-9_]+)\}$/.exec(path);
  if (m === null) throw new Error(`jsonPath ${path} is not one this replay supports`);
  return (body as Record<string, unknown>)[m[1]!];
}

/**
 * One measurement as Argo's web provider takes it.
 * @param admin replaces the scheme and host of the template's URL (the test's sidecar instead of the cluster Service)
 */
export async function argoMeasure(
  metric: ArgoMetric,
  args: Readonly<Record<string, string>>,
  admin: string,
): Promise<{ phase: ArgoPhase; status: number; result: any }> {
  const web = metric.provider.web;
  const url = new URL(substituteArgs(web.url, args));
  const target = new URL(url.pathname + url.search, admin);
  const headers: Record<string, string> = { 'user-agent': 'Go-http-client/1.1', 'accept-encoding': 'gzip' };
  for (const h of web.headers ?? []) headers[h.key.toLowerCase()] = substituteArgs(h.value, args);
  const res = await request(target, {
    method: (web.method ?? 'GET') as 'GET',
    headers,
    headersTimeout: (web.timeoutSeconds ?? 10) * 1000,
    bodyTimeout: (web.timeoutSeconds ?? 10) * 1000,
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) return { phase: 'Error', status: res.statusCode, result: text };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { phase: evaluateResult(metric, text), status: res.statusCode, result: text };
  }
  const result = applyJsonPath(web.jsonPath, body);
  return { phase: evaluateResult(metric, result), status: res.statusCode, result };
}

/** Flagger's CanaryWebhookPayload. */
export interface FlaggerPayload {
  name: string;
  namespace: string;
  phase: string;
  checksum: string;
  metadata?: Record<string, string>;
}

/** Go's json.Marshal of CanaryWebhookPayload: declared field order, metadata omitted when empty. */
export function marshalPayload(p: FlaggerPayload): string {
  const { name, namespace, phase, checksum, metadata } = p;
  return JSON.stringify(
    metadata && Object.keys(metadata).length > 0 ? { name, namespace, phase, checksum, metadata } : { name, namespace, phase, checksum },
  );
}

/** One webhook call as Flagger's callWebhook makes it. @returns ok as Flagger reads it (status <= 202), and the body */
export async function flaggerCall(url: string, payload: FlaggerPayload): Promise<{ ok: boolean; status: number; body: string }> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'Go-http-client/1.1', 'accept-encoding': 'gzip' },
    body: marshalPayload(payload),
  });
  const body = await res.body.text();
  return { ok: res.statusCode <= 202, status: res.statusCode, body };
}

/** The shipped Canary's webhooks by type, each URL moved onto `admin`. */
export function shippedWebhooks(admin: string): Record<string, { url: string; metadata?: Record<string, string> }> {
  const canary = manifests('flagger', ['canary.yaml']).find((d) => d.data.kind === 'Canary')!.data;
  const hooks: Record<string, { url: string; metadata?: Record<string, string> }> = {};
  for (const w of canary.spec.analysis.webhooks as Array<{ type: string; url: string; metadata?: Record<string, string> }>) {
    const u = new URL(w.url);
    hooks[w.type] = { url: new URL(u.pathname + u.search, admin).toString(), metadata: w.metadata };
  }
  return hooks;
}
