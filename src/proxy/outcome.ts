/**
 * Outcome classification of one proxied request. Errors of the version: status codes in the configured classes
 * (default 5xx), upstream connect failures, resets and timeouts. A client that went away is recorded but is not the
 * version's error.
 */
export type RequestOutcome = 'ok' | 'status_error' | 'connect_error' | 'reset' | 'timeout' | 'client_abort';

/** Outcomes that count as errors of the version. */
export function isErrorOutcome(outcome: RequestOutcome): boolean {
  return outcome === 'status_error' || outcome === 'connect_error' || outcome === 'reset' || outcome === 'timeout';
}

/**
 * A classifier from status code to "counts as an error", built once from classes (`5xx`) and codes (`429`):
 * one array lookup per request, no allocation.
 * @param errorStatuses config proxy.errorStatuses
 */
export function createStatusClassifier(errorStatuses: readonly string[]): (status: number) => boolean {
  const table = new Uint8Array(600);
  for (const entry of errorStatuses) {
    if (/^[1-5]xx$/.test(entry)) {
      const base = Number(entry[0]) * 100;
      table.fill(1, base, base + 100);
    } else if (/^[1-5][0-9][0-9]$/.test(entry)) {
      table[Number(entry)] = 1;
    } else {
      throw new Error(`not a status class or code: ${entry}`);
    }
  }
  return (status) => table[status] === 1;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The stable code of an upstream error (undici's `UND_ERR_*` or a system `E*` code), looking through `cause`. */
export function errorCodeOf(err: unknown): string {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && (CONNECT_CODES.has(e.code) || TIMEOUT_CODES.has(e.code))) return e.code;
    if (e.cause === undefined) break;
    e = e.cause as typeof e;
  }
  const top = err as { code?: unknown } | undefined;
  return typeof top?.code === 'string' ? top.code : 'UNKNOWN';
}

/**
 * Maps an upstream failure to an outcome and the status the proxy answers with (when headers are not yet sent):
 * connect failure 502, reset 502, timeout 504 (as fastify-reply-from and nginx do).
 */
export function classifyUpstreamError(err: unknown): { outcome: 'connect_error' | 'reset' | 'timeout'; status: 502 | 504; code: string } {
  const code = errorCodeOf(err);
  if (TIMEOUT_CODES.has(code)) return { outcome: 'timeout', status: 504, code };
  if (CONNECT_CODES.has(code)) return { outcome: 'connect_error', status: 502, code };
  return { outcome: 'reset', status: 502, code };
}
