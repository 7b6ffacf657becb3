/**
 * PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert Event"): a `trigger` when the canary is rolled
 * back, a `resolve` with the same `dedup_key` when the rollback is reset. One alert per rollback: the key is the
 * service and the decision's time. Warnings, breaches and recoveries do not page; neither does advisory mode, whose
 * rollbacks are would-be ones.
 */
import { explainOf, figuresOf, summaryOf, type Notification } from './notification.ts';
import type { Sink, SinkRequest } from './sink.ts';
import type { RollbackDecision } from '../core/controller.ts';

/** The public endpoint of the Events API v2 (CANARY_GATE_NOTIFY_PAGERDUTY_URL overrides it). */
export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

/** PagerDuty's limits: payload.summary 1024 characters, dedup_key 255. */
const SUMMARY_MAX = 1024;
const DEDUP_KEY_MAX = 255;

/** The alert of one rollback: `canary-gate/<service>/<decision time, ms since the epoch>`. */
export function dedupKeyOf(service: string, decision: RollbackDecision): string {
  return `canary-gate/${service}/${decision.atMs}`.slice(0, DEDUP_KEY_MAX);
}

function trigger(routingKey: string, n: Notification, decision: RollbackDecision): Record<string, unknown> {
  const figures = figuresOf(n.event);
  const summary = summaryOf(n);
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKeyOf(n.service, decision),
    client: 'canary-gate',
    payload: {
      summary: summary.length > SUMMARY_MAX ? `${summary.slice(0, SUMMARY_MAX - 1)}…` : summary,
      source: n.service,
      severity: 'critical',
      timestamp: decision.at,
      component: figures?.canary.version ?? 'canary',
      group: n.service,
      class: 'canary rollback',
      custom_details: {
        reason: decision.reason,
        trigger: decision.trigger,
        decided_by: decision.by,
        sent_by: n.pod,
        config_hash: decision.configHash ?? null,
        failed_checks: decision.checks.filter((c) => c.outcome === 'fail').map((c) => `${c.check}: ${c.reason}`),
        baseline: figures?.baseline ?? null,
        canary: figures?.canary ?? null,
        notification_id: n.id,
        explain: explainOf(n.event),
      },
    },
  };
}

/**
 * @param routingKey the integration key (CANARY_GATE_NOTIFY_PAGERDUTY_ROUTING_KEY): a secret, never logged
 * @param url the Events API endpoint; default {@link PAGERDUTY_EVENTS_URL}
 */
export function createPagerDutySink(routingKey: string, url: string = PAGERDUTY_EVENTS_URL): Sink {
  return {
    name: 'pagerduty',
    secrets: [routingKey, url],
    render(n): SinkRequest | null {
      const e = n.event;
      if (e.advisory) return null;
      if (e.kind === 'rolled_back') return { url, body: trigger(routingKey, n, e.decision) };
      if (e.kind === 'reset' && e.decision !== null)
        return { url, body: { routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKeyOf(n.service, e.decision) } };
      return null;
    },
  };
}
