/**
 * The generic JSON webhook: a POST of the notification as it is, with the transition's fields (decision, verdict,
 * reset actor and reason), a one-line summary and the `canary-gate explain` table of its decision or verdict.
 * Receivers switch on `kind` and pass over kinds they do not know (rollout transitions are to come).
 */
import { explainOf, summaryOf, type Notification } from './notification.ts';
import type { Sink } from './sink.ts';

/** The body a webhook receives: the event's own fields flattened beside the notification's. */
export function webhookBody(n: Notification): Record<string, unknown> {
  return {
    id: n.id,
    service: n.service,
    pod: n.pod,
    at: new Date(n.event.atMs).toISOString(),
    summary: summaryOf(n),
    ...n.event,
    explain: explainOf(n.event),
  };
}

/** @param url where to POST (CANARY_GATE_NOTIFY_WEBHOOK_URL): a secret, never logged */
export function createWebhookSink(url: string): Sink {
  return { name: 'webhook', secrets: [url], render: (n) => ({ url, body: webhookBody(n) }) };
}
