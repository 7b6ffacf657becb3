/**
 * One error base for canary-gate, with stable codes that callers match on (`err.code`),
 * in the manner of undici's `UND_ERR_*` and fastify's `createError`.
 * The README's "Errors" table lists every code with what it means and what to do.
 */
/**
 * Every code with its exit code and its README row: the one table the CLI reads (`exitCodeOf`) and the README's
 * "Errors" section lists (a test keeps them equal). Exit 2: the input was wrong (fix it and run again); exit 1: the run
 * failed.
 */
export const ERROR_TABLE = {
  CG_CONFIG_INVALID: {
    exitCode: 2,
    meaning: 'the config or an environment override failed validation',
    todo: 'fix each field named in the message',
  },
  CG_CONFIG_UNREADABLE: {
    exitCode: 2,
    meaning: 'the config file is missing, unreadable or not YAML',
    todo: 'check the path and the YAML line named',
  },
  CG_PAYLOAD_CORRUPT: {
    exitCode: 1,
    meaning: 'a fleet payload or decision record did not decode (a payload is skipped and counted)',
    todo: 'look for a foreign writer or a sidecar with another `window.slot`',
  },
  CG_DEMO_NO_REDIS: { exitCode: 2, meaning: 'the demo found no Redis', todo: 'install `redis-server` or set `REDIS_URL`' },
  CG_RECORDING_INVALID: {
    exitCode: 2,
    meaning: 'a recording given to `replay` or `tune` is not one; the message names the file and line',
    todo: 'record it again with `canary-gate record`, or fix the line',
  },
  CG_REDIS_READ_FAILED: {
    exitCode: 1,
    meaning: 'a fleet read was cut (the pipeline aborted, or the reader closed during the read); the evaluation is inconclusive',
    todo: 'nothing: the next evaluation reads again; look at Redis if it repeats',
  },
  CG_DOCS_OUT_OF_SYNC: {
    exitCode: 1,
    meaning: '`config/example.yaml` or the README lacks what the generated docs need (a field, its comment, the table markers)',
    todo: 'document the field in `config/example.yaml`, or restore the markers',
  },
  CG_INTERNAL: { exitCode: 1, meaning: 'a bug: canary-gate broke one of its own rules', todo: 'report it with the message' },
} as const satisfies Record<string, { exitCode: 1 | 2; meaning: string; todo: string }>;

/** The codes by name (`ErrorCodes.CONFIG_INVALID === 'CG_CONFIG_INVALID'`). */
export const ErrorCodes = {
  CONFIG_INVALID: 'CG_CONFIG_INVALID',
  CONFIG_UNREADABLE: 'CG_CONFIG_UNREADABLE',
  PAYLOAD_CORRUPT: 'CG_PAYLOAD_CORRUPT',
  DEMO_NO_REDIS: 'CG_DEMO_NO_REDIS',
  RECORDING_INVALID: 'CG_RECORDING_INVALID',
  REDIS_READ_FAILED: 'CG_REDIS_READ_FAILED',
  DOCS_OUT_OF_SYNC: 'CG_DOCS_OUT_OF_SYNC',
  INTERNAL: 'CG_INTERNAL',
} as const satisfies Record<string, keyof typeof ERROR_TABLE>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** The process exit code of an error: its code's in {@link ERROR_TABLE}, 1 for anything else. */
export function exitCodeOf(err: unknown): 1 | 2 {
  return err instanceof CanaryGateError ? ERROR_TABLE[err.code].exitCode : 1;
}

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
