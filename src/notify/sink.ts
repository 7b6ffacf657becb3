/**
 * A notification sink: how one external system wants to hear about a transition. A sink only renders; the notifier
 * (src/notify/notifier.ts) queues, posts, times out, retries and counts, the same way for every sink.
 */
import type { Notification } from './notification.ts';

/** One HTTP POST of a JSON body. */
export interface SinkRequest {
  readonly url: string;
  /** Serialised with JSON.stringify (NaN becomes null). */
  readonly body: unknown;
}

export interface Sink {
  /** The `sink` label of the notification metrics and logs: `webhook`, `slack`, `pagerduty`. */
  readonly name: string;
  /** Strings that must never reach a log: the webhook URL, the routing key. */
  readonly secrets: readonly string[];
  /** The request announcing `n`, or null when this sink does not take such a notification. Pure. */
  render(n: Notification): SinkRequest | null;
}
