/**
 * A Slack incoming webhook (api.slack.com/messaging/webhooks) with a Block Kit message: a header (what happened to
 * which service), the reason, a fields section with both versions' figures, the checks that failed (or warned), and
 * a context line (who decided, when, which config, the notification id). Text is cut to Block Kit's limits (header
 * 150 characters, section text 3000, a field 2000) and `&`, `<`, `>` are escaped as Slack's mrkdwn requires.
 */
import { msText, pct } from '../core/explain.ts';
import type { CheckResult, VersionFigures } from '../core/verdict.ts';
import { decisionOf, figuresOf, reasonOf, summaryOf, titleOf, verdictOf, type Notification } from './notification.ts';
import type { Sink } from './sink.ts';

const HEADER_MAX = 150;
const SECTION_MAX = 3000;
const FIELD_MAX = 2000;

const cut = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
/** Slack's mrkdwn control characters, escaped (api.slack.com, "Formatting text for app surfaces"). */
const escapeMrkdwn = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const mrkdwn = (text: string, max = SECTION_MAX): Record<string, string> => ({ type: 'mrkdwn', text: cut(escapeMrkdwn(text), max) });

function figuresField(role: string, f: VersionFigures): Record<string, string> {
  const lines = [
    `*${role} ${f.version}*`,
    `requests ${f.requests} (${f.requestsPerSecond.toFixed(1)}/s, ${f.pods} pods)`,
    `errors ${f.errors} (${pct(f.errorRatio)})`,
    `p50 ${msText(f.p50Ms)} · p95 ${msText(f.p95Ms)} · p99 ${msText(f.p99Ms)}`,
  ];
  return mrkdwn(lines.join('\n'), FIELD_MAX);
}

/** The checks worth a line: the failing ones, or the warning ones when none failed (a warning's message). */
function checksWorthALine(n: Notification): readonly CheckResult[] {
  const checks = verdictOf(n.event)?.checks ?? decisionOf(n.event)?.checks ?? [];
  const failed = checks.filter((c) => c.outcome === 'fail');
  return failed.length > 0 ? failed : checks.filter((c) => c.outcome === 'warn');
}

function contextLine(n: Notification): string {
  const d = decisionOf(n.event);
  const parts = [`${n.event.kind} at ${new Date(n.event.atMs).toISOString()}`];
  if (d !== null) parts.push(`decided by ${d.by} at ${d.at}${d.configHash ? ` (config ${d.configHash})` : ''}`);
  parts.push(`sent by ${n.pod}`, `id ${n.id}`);
  return parts.join(' · ');
}

/** The Block Kit message of a notification. */
export function slackMessage(n: Notification): Record<string, unknown> {
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: cut(titleOf(n), HEADER_MAX) } },
    { type: 'section', text: mrkdwn(`*Reason:* ${reasonOf(n.event)}`) },
  ];
  const figures = figuresOf(n.event);
  if (figures !== null)
    blocks.push({ type: 'section', fields: [figuresField('Baseline', figures.baseline), figuresField('Canary', figures.canary)] });
  const checks = checksWorthALine(n);
  if (checks.length > 0) {
    const title = checks[0]!.outcome === 'fail' ? 'Failed checks' : 'Checks at warn';
    blocks.push({ type: 'section', text: mrkdwn([`*${title}*`, ...checks.map((c) => `• ${c.check}: ${c.reason}`)].join('\n')) });
  }
  blocks.push({ type: 'context', elements: [mrkdwn(contextLine(n))] });
  return { text: cut(escapeMrkdwn(summaryOf(n)), SECTION_MAX), blocks };
}

/** @param url the incoming webhook's URL (CANARY_GATE_NOTIFY_SLACK_WEBHOOK_URL): a secret, never logged */
export function createSlackSink(url: string): Sink {
  return { name: 'slack', secrets: [url], render: (n) => ({ url, body: slackMessage(n) }) };
}
