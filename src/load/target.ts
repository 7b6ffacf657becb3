/**
 * Where load may go. A load profile is meant for rehearsing a canary on this machine, so targets are loopback only
 * (127.0.0.0/8, ::1, localhost) unless the caller passes `allowNonLoopback` (the CLI's `--allow-non-loopback`): a
 * copied profile never sends load elsewhere by accident.
 */
import { isIPv4 } from 'node:net';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';

/** True for 127.0.0.0/8, ::1 and localhost (host names as URL gives them: IPv6 in brackets). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === 'localhost' || host === '[::1]' || host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/**
 * Validates a load target and returns its origin (`http://127.0.0.1:8080`).
 * @param target an http(s) origin; a path other than `/` is refused (paths go in the profile's requests)
 * @param allowNonLoopback accept a host that is not loopback
 * @throws CanaryGateError `CG_CONFIG_INVALID` naming `target` and the reason
 */
export function checkTarget(target: string, allowNonLoopback = false): string {
  const fail = (reason: string): never => {
    throw new CanaryGateError(ErrorCodes.CONFIG_INVALID, `invalid load target ${JSON.stringify(target)}`, {
      details: [`target: ${reason}`],
    });
  };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return fail('must be a URL such as http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`must be http or https, not ${url.protocol.replace(':', '')}`);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '')
    fail('must be an origin such as http://127.0.0.1:8080; paths go in requests[].path');
  if (!allowNonLoopback && !isLoopbackHost(url.hostname)) {
    fail(
      `${url.hostname} is not a loopback address: load profiles target 127.0.0.1, ::1 or localhost unless --allow-non-loopback is given`,
    );
  }
  return url.origin;
}
