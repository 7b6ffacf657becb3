/**
 * Which sinks are configured. Their URLs and keys are secrets: they come from the environment only (never the config
 * file, never a log line), read by the CLI and handed to the sidecar as {@link NotifySecrets}, as the admin token is.
 */
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { createPagerDutySink, PAGERDUTY_EVENTS_URL } from './pagerduty-sink.ts';
import type { Sink } from './sink.ts';
import { createSlackSink } from './slack-sink.ts';
import { createWebhookSink } from './webhook-sink.ts';

/** The environment variables, one per secret. */
export const NOTIFY_ENV = {
  webhookUrl: 'CANARY_GATE_NOTIFY_WEBHOOK_URL',
  slackWebhookUrl: 'CANARY_GATE_NOTIFY_SLACK_WEBHOOK_URL',
  pagerDutyRoutingKey: 'CANARY_GATE_NOTIFY_PAGERDUTY_ROUTING_KEY',
  pagerDutyUrl: 'CANARY_GATE_NOTIFY_PAGERDUTY_URL',
} as const;

/** The sinks' secrets; an absent or empty one leaves its sink off. */
export type NotifySecrets = Partial<Record<keyof typeof NOTIFY_ENV, string>>;

/** The secrets from an environment (the CLI passes process.env). */
export function notifySecretsFrom(env: Readonly<Record<string, string | undefined>>): NotifySecrets {
  const out: Record<string, string> = {};
  for (const [field, name] of Object.entries(NOTIFY_ENV)) {
    const value = env[name]?.trim();
    if (value) out[field] = value;
  }
  return out;
}

/** Whether `text` is an absolute http(s) URL. */
function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * The sinks the secrets configure: webhook, Slack, PagerDuty (each only when its secret is set).
 * @throws CanaryGateError CG_CONFIG_INVALID naming each variable that is not an http(s) URL (never its value)
 */
export function createSinks(secrets: NotifySecrets): Sink[] {
  const problems: string[] = [];
  const url = (field: 'webhookUrl' | 'slackWebhookUrl' | 'pagerDutyUrl'): string | undefined => {
    const value = secrets[field];
    if (value !== undefined && !isHttpUrl(value))
      problems.push(`${NOTIFY_ENV[field]}: not an http(s) URL (value not shown: it is a secret)`);
    return value;
  };
  const sinks: Sink[] = [];
  const webhook = url('webhookUrl');
  if (webhook) sinks.push(createWebhookSink(webhook));
  const slack = url('slackWebhookUrl');
  if (slack) sinks.push(createSlackSink(slack));
  const pagerDutyUrl = url('pagerDutyUrl');
  if (secrets.pagerDutyRoutingKey) sinks.push(createPagerDutySink(secrets.pagerDutyRoutingKey, pagerDutyUrl ?? PAGERDUTY_EVENTS_URL));
  else if (pagerDutyUrl) problems.push(`${NOTIFY_ENV.pagerDutyUrl}: set without ${NOTIFY_ENV.pagerDutyRoutingKey}`);
  if (problems.length > 0) throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, 'invalid notification settings', { details: problems });
  return sinks;
}
