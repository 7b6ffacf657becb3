/**
 * Structured logs (pino, JSON lines on stdout). One logger per sidecar, with the service, pod and version bound,
 * so every line says where it came from. URLs logged under the fields below lose their credentials (`UPSTREAM_URL`
 * may be `http://user:pass@host`): a log line never carries a password.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Log fields that may hold a URL with credentials, at the top level or one level down. */
const URL_FIELDS = ['upstream', 'url', '*.upstream', '*.url'];

/**
 * A URL without its user and password (`http://***@host:3000/`); other values unchanged.
 * @param value anything a log field holds
 */
export function withoutCredentials(value: unknown): unknown {
  if (typeof value !== 'string' || !value.includes('@')) return value;
  const url = URL.parse(value);
  // A URL the WHATWG parser refuses (a Redis Cluster's or Sentinels' host list, `redis://u:p@a:1,b:2`) still loses
  // whatever stands between the scheme and the last `@` of its authority.
  if (url === null) return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1***@');
  if (url.username === '' && url.password === '') return value;
  url.username = '***';
  url.password = '';
  return url.href;
}

/**
 * @param level pino level (`info` by default in config)
 * @param bindings fields added to every line, e.g. { service, pod, version }
 * @param destination where lines go (a stream); stdout when omitted
 */
export function createLogger(level: string, bindings: Record<string, string> = {}, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: bindings,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: URL_FIELDS, censor: withoutCredentials },
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
