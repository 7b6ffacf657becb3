/**
 * Outcome classification of one proxied request. Errors of the version: status codes in the configured classes
 * (default 5xx), upstream connect failures, resets and timeouts. Not errors of the version: a client that went away
 * (`client_abort`), a request turned away after waiting `proxy.queueTimeout` for an upstream connection
 * (`overloaded`, 503: the sidecar's saturation), a request body slower than the proxy allows (`body_timeout`, 408),
 * and a request the proxy refused to forward (`bad_request`, 400).
 */
export type RequestOutcome =
  | 'ok'
  | 'status_error'
  | 'connect_error'
  | 'reset'
  | 'timeout'
  | 'client_abort'
  | 'overloaded'
  | 'body_timeout'
  | 'bad_request';

/** The outcomes of an upstream failure, and the status the proxy answers with when no header was sent yet. */
export interface UpstreamFailure {
  readonly outcome: 'connect_error' | 'reset' | 'timeout';
  readonly status: 502 | 504;
  /** The stable code found on the error (`UND_ERR_*` or a system `E*` code), `UNKNOWN` when it had none. */
  readonly code: string;
}

/** Whether an outcome counts as an error of the version (a client that went away, or the proxy's own refusals, do not). */
export function isErrorOutcome(outcome: RequestOutcome): boolean {
  return outcome === 'status_error' || outcome === 'connect_error' || outcome === 'reset' || outcome === 'timeout';
}

const STATUS_CLASS = /^[1-5]xx$/;
const STATUS_CODE = /^[1-5][0-9][0-9]$/;

/**
 * A classifier from status code to "counts as an error", built once from classes (`5xx`) and exact codes (`429`):
 * one typed-array lookup per request, no allocation. Codes outside 100..599 are never errors.
 * @param errorStatuses config `proxy.errorStatuses`, e.g. `['5xx', '429']`
 * @throws Error naming the entry when it is neither a class nor a code (config validation refuses those first)
 */
export function createStatusClassifier(errorStatuses: readonly string[]): (status: number) => boolean {
  const table = new Uint8Array(600);
  for (const entry of errorStatuses) {
    if (STATUS_CLASS.test(entry)) {
      const base = Number(entry[0]) * 100;
      table.fill(1, base, base + 100);
    } else if (STATUS_CODE.test(entry)) {
      table[Number(entry)] = 1;
    } else {
      throw new Error(`proxy.errorStatuses: ${JSON.stringify(entry)} is not a status class such as 5xx or a code such as 429`);
    }
  }
  // Out-of-range and fractional indexes read `undefined`, which is not 1.
  return (status) => table[status] === 1;
}

/**
 * A classifier from gRPC status code (0..16) to "counts as an error of the version", built once.
 * @param codes config `proxy.grpcErrorCodes`, e.g. `[2, 4, 12, 13, 14, 15]`
 */
export function createGrpcClassifier(codes: readonly number[]): (code: number) => boolean {
  const table = new Uint8Array(17);
  for (const code of codes) table[code] = 1;
  return (code) => table[code] === 1;
}

/** The upstream could not be reached: nothing was sent, the request is safe to retry elsewhere. */
const CONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
/** The upstream took too long: to connect, to send its headers, or between two body chunks. */
const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
// Everything else is a reset: the connection broke after it was made (ECONNRESET, EPIPE, UND_ERR_SOCKET), the
// response was malformed or cut (HPE_*, UND_ERR_RES_CONTENT_LENGTH_MISMATCH), or the pool was closed under it.

interface ErrorLike {
  readonly code?: unknown;
  readonly cause?: unknown;
  readonly errors?: unknown;
}

/**
 * The stable code of an upstream error. Looks at `err.code`, then through `cause` and the first entry of an
 * AggregateError's `errors` (Node's happy-eyeballs connect), at most 4 levels deep: the first connect or timeout
 * code wins (it says more than a wrapping socket error), else the outermost code, else `UNKNOWN`.
 */
export function errorCodeOf(err: unknown): string {
  let outermost: string | undefined;
  let e = err as ErrorLike | null | undefined;
  for (let depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    if (typeof e.code === 'string') {
      if (CONNECT_CODES.has(e.code) || TIMEOUT_CODES.has(e.code)) return e.code;
      outermost ??= e.code;
    }
    e = (e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined)) as ErrorLike | undefined;
  }
  return outermost ?? 'UNKNOWN';
}

/**
 * Maps an upstream failure to an outcome and the status the proxy answers with when headers are not yet sent:
 * connect failure 502, reset 502, timeout 504 (as nginx and fastify-reply-from do). A connect timeout is a timeout.
 */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  const code = errorCodeOf(err);
  if (TIMEOUT_CODES.has(code)) return { outcome: 'timeout', status: 504, code };
  if (CONNECT_CODES.has(code)) return { outcome: 'connect_error', status: 502, code };
  return { outcome: 'reset', status: 502, code };
}
