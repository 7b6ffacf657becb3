/**
 * When to try a notification again, and how long to wait first.
 *
 * Backoff is capped exponential with full jitter (M. Brooker, "Exponential Backoff And Jitter", AWS Architecture
 * Blog, 2015): the wait before attempt n + 1 is uniform in [0, min(cap, base x 2^(n-1))), which spreads the retries of
 * many senders and, in Brooker's simulation, costs the least total work of the jitter variants.
 */

/**
 * @param attempt the attempt that just failed, 1..
 * @param baseMs the cap of the first wait, ms (> 0)
 * @param capMs the largest wait, ms (>= baseMs)
 * @param random uniform in [0, 1)
 * @returns ms to wait, in [0, min(capMs, baseMs x 2^(attempt - 1)))
 */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Whether a response status is worth another attempt: 408 (timeout), 429 (rate limited; Slack and PagerDuty both
 * answer it) and every 5xx. Any other status (a 4xx: a bad URL, a revoked webhook, an invalid routing key; a 3xx:
 * a redirect nobody follows) will not change by trying again.
 */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
