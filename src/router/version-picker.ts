/**
 * Which version serves a request, given the canary's weight (the flag: the canary's traffic percentage, 0..100).
 *
 * With a sticky key (the value of a configured request header or cookie), the user's bucket is a hash of the flag key
 * and the key, 0..9999, and the canary gets the buckets below weight x 100. The canary's buckets at one weight are
 * a subset of its buckets at any higher weight, so raising the weight only moves users from the baseline to the
 * canary, never back: the scheme of flagd's `fractional` operator (flagd docs, "Fractional Operation": a hash of the
 * flag key and the targeting key, cumulative bucket ranges). flagd hashes with MurmurHash3; any uniform hash will do
 * here, since nothing outside this router has to agree on the bucket: SHA-256 from node:crypto, first 32 bits.
 *
 * Without a sticky key, each request draws a uniform number: the canary's share converges on the weight.
 */
import { hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Buckets of the sticky hash: a weight resolves to 0.01 %. */
export const BUCKETS = 10_000;

/** The two sides a request can go to. */
export type Side = 'baseline' | 'canary';

/**
 * A user's bucket, uniform over 0..BUCKETS - 1.
 * @param salt the flag key, so that two rollouts choose different users for their canaries
 * @param key the sticky key's value (a user id, a session cookie)
 */
export function bucketOf(salt: string, key: string): number {
  const digest = hash('sha256', `${salt}\n${key}`, 'buffer');
  return Math.floor((digest.readUInt32BE(0) * BUCKETS) / 2 ** 32);
}

/**
 * Whether a bucket (or a uniform draw scaled to buckets) goes to the canary at `weightPercent`.
 * @param bucket 0..BUCKETS (a draw may be fractional)
 * @param weightPercent 0..100; 0 sends nothing to the canary, 100 everything
 */
export function sideOf(bucket: number, weightPercent: number): Side {
  return bucket < Math.round(weightPercent * (BUCKETS / 100)) ? 'canary' : 'baseline';
}

/** The value of cookie `name` in a Cookie header (RFC 6265 section 4.2.1: `a=1; b=2`), quotes removed; undefined when absent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    const value = pair.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

export interface VersionPickerOptions {
  /** Request header whose value is the sticky key (config router.stickyHeader); '' for none. */
  readonly stickyHeader: string;
  /** Cookie whose value is the sticky key (config router.stickyCookie); '' for none. The header wins. */
  readonly stickyCookie: string;
  /** Salt of the hash: the flag key. */
  readonly salt: string;
  /** Uniform draw in [0, 1) for requests without a sticky key. Default Math.random. */
  readonly random?: () => number;
}

/** Picks a side for a request's headers at the current weight (percent 0..100). */
export type VersionPicker = (headers: IncomingHttpHeaders, weightPercent: number) => Side;

export function createVersionPicker(options: VersionPickerOptions): VersionPicker {
  const header = options.stickyHeader.toLowerCase(); // Node lowercases incoming header names
  const cookie = options.stickyCookie;
  const random = options.random ?? Math.random;
  const stickyKeyOf = (headers: IncomingHttpHeaders): string | undefined => {
    if (header !== '') {
      const value = headers[header];
      const text = Array.isArray(value) ? value[0] : value;
      if (text !== undefined && text !== '') return text;
    }
    if (cookie !== '') {
      const value = cookieValue(headers.cookie, cookie);
      if (value !== undefined && value !== '') return value;
    }
    return undefined;
  };
  return (headers, weightPercent) => {
    // Fixed sides need no hash and no draw.
    if (weightPercent <= 0) return 'baseline';
    if (weightPercent >= 100) return 'canary';
    const key = stickyKeyOf(headers);
    return sideOf(key === undefined ? random() * BUCKETS : bucketOf(options.salt, key), weightPercent);
  };
}
