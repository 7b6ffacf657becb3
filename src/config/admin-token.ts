/**
 * The admin bearer token's start-up check: a short token can be guessed, so a configured one must have at least
 * {@link MIN_ADMIN_TOKEN_LENGTH} characters (`openssl rand -hex 32` gives 64). No token at all is allowed: the
 * mutating endpoints are then disabled (403).
 */
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { ADMIN_TOKEN_ENV } from './defaults.ts';

/** Fewest characters of a configured admin token. */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

/**
 * @param token the configured token (CANARY_GATE_ADMIN_TOKEN); undefined or empty: none
 * @throws CanaryGateError CG_CONFIG_INVALID (exit 2) naming the variable when it is shorter than 32 characters
 */
export function checkAdminToken(token: string | undefined): void {
  if (token === undefined || token === '' || token.length >= MIN_ADMIN_TOKEN_LENGTH) return;
  throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, 'invalid config: 1 problem(s)', {
    details: [
      `${ADMIN_TOKEN_ENV}: must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (got ${token.length}); generate one with: openssl rand -hex 32`,
    ],
  });
}
