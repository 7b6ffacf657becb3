/**
 * Structured logs (pino, JSON lines on stdout). One logger per sidecar, with the service, pod and version bound,
 * so every line says where it came from.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * @param level pino level (`info` by default in config)
 * @param bindings fields added to every line, e.g. { service, pod, version }
 * @param destination where lines go (a stream); stdout when omitted
 */
export function createLogger(level: string, bindings: Record<string, string> = {}, destination?: NodeJS.WritableStream): Logger {
  const options = { level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
