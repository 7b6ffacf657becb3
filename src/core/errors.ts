/**
 * One error base for canary-gate, with stable codes that callers match on (`err.code`),
 * in the manner of undici's `UND_ERR_*` and fastify's `createError`.
 * The README's "Errors" table lists every code with what it means and what to do.
 */
export const ErrorCodes = {
  /** The config file or an environment override failed validation (exit code 2). */
  CONFIG_INVALID: 'CG_CONFIG_INVALID',
  /** The config file could not be read or is not YAML (exit code 2). */
  CONFIG_UNREADABLE: 'CG_CONFIG_UNREADABLE',
  /** A fleet payload read from Redis could not be decoded; it is skipped and counted. */
  PAYLOAD_CORRUPT: 'CG_PAYLOAD_CORRUPT',
  /** No Redis could be found or started for the demo (exit code 2). */
  DEMO_NO_REDIS: 'CG_DEMO_NO_REDIS',
  /** A recording given to replay or tune is not one (exit code 2); the message names the file and line. */
  RECORDING_INVALID: 'CG_RECORDING_INVALID',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base class of every error canary-gate throws on purpose. `code` is stable across releases. */
export class CanaryGateError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly string[];

  /**
   * @param code stable code from {@link ErrorCodes}
   * @param message one line for people
   * @param options `details`: one line per problem (e.g. `window.slot: must be positive`); `cause`: the underlying error
   */
  constructor(code: ErrorCode, message: string, options: { details?: readonly string[]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CanaryGateError';
    this.code = code;
    this.details = options.details ?? [];
  }
}
