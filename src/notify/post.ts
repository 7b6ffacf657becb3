/**
 * One POST of a JSON body, bounded by a timeout. Never throws: every failure (a refused connection, a reset, a
 * timeout, an abort, a non-2xx status) becomes a {@link PostResult} that says whether trying again may help. The
 * response body is read and dropped, so that the connection can be reused.
 */
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import { retryableStatus } from './retry.ts';

export type PostResult =
  | { readonly ok: true; readonly status: number }
  | {
      readonly ok: false;
      /** The response status, or null when none came (connection failed, timed out, aborted). */
      readonly status: number | null;
      /** Whether another attempt may succeed. */
      readonly retry: boolean;
      /** What went wrong, for the log (the caller redacts secrets from it). */
      readonly error: string;
    };

/**
 * @param timeoutMs bounds the whole attempt: connecting, the response head and its body
 * @param signal aborts the attempt (the notifier's destroy)
 */
export async function postJson(
  dispatcher: Dispatcher,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<PostResult> {
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json', 'user-agent': 'canary-gate', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode };
    return { ok: false, status: res.statusCode, retry: retryableStatus(res.statusCode), error: `HTTP ${res.statusCode}` };
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, status: null, retry: true, error: `${e.code ?? e.name}: ${e.message}` };
  }
}
