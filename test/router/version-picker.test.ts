/**
 * The version picker on its own: buckets are uniform, a sticky key always lands in the same bucket, raising the
 * weight only moves users from the baseline to the canary, 0 and 100 are exact, and the cookie reader takes the
 * cookie it is asked for.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUCKETS, bucketOf, cookieValue, createVersionPicker, sideOf } from '../../src/router/version-picker.ts';
import { binomialInterval } from '../helpers/binomial.ts';

describe('bucketOf', () => {
  it('is the same for the same key and salt, and within 0..BUCKETS - 1', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (salt, key) => {
        const b = bucketOf(salt, key);
        expect(b).toBe(bucketOf(salt, key));
        expect(Number.isInteger(b) && b >= 0 && b < BUCKETS).toBe(true);
      }),
    );
  });

  it('spreads 20 000 users evenly over ten bands of buckets (each band within its 99.9 % binomial interval)', () => {
    const n = 20_000;
    const bands = new Array<number>(10).fill(0);
    for (let i = 0; i < n; i++) bands[Math.floor(bucketOf('feature:v2_traffic_percentage', `user-${i}`) / (BUCKETS / 10))]!++;
    const [low, high] = binomialInterval(n, 0.1);
    for (const count of bands) {
      expect(count).toBeGreaterThanOrEqual(low);
      expect(count).toBeLessThanOrEqual(high);
    }
  });

  it('depends on the salt (the flag key), so two rollouts pick different users', () => {
    const moved = Array.from({ length: 200 }, (_, i) => `user-${i}`).filter((u) => bucketOf('flag-a', u) !== bucketOf('flag-b', u));
    expect(moved.length).toBeGreaterThan(190);
  });
});

describe('sideOf', () => {
  it.each([
    [0, 0, 'baseline'],
    [0, 0.01, 'canary'],
    [1, 0.01, 'baseline'],
    [999, 10, 'canary'],
    [1000, 10, 'baseline'],
    [2499, 25, 'canary'],
    [2500, 25, 'baseline'],
    [9999, 99.99, 'baseline'],
    [9999, 100, 'canary'],
    [0, 100, 'canary'],
  ] as const)('bucket %d at weight %d %% goes to the %s', (bucket, weight, side) => {
    expect(sideOf(bucket, weight)).toBe(side);
  });

  it('is monotone: a bucket on the canary at one weight stays there at every higher weight', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: BUCKETS - 1 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (bucket, a, b) => {
          const [low, high] = a <= b ? [a, b] : [b, a];
          if (sideOf(bucket, low) === 'canary') expect(sideOf(bucket, high)).toBe('canary');
        },
      ),
    );
  });
});

describe('cookieValue', () => {
  it.each([
    ['uid=u1', 'uid', 'u1'],
    ['theme=dark; uid=u2', 'uid', 'u2'],
    ['theme=dark;uid=u3;x=1', 'uid', 'u3'],
    ['uid="u4"', 'uid', 'u4'],
    ['xuid=no; uid=u5', 'uid', 'u5'],
    ['uid=a=b', 'uid', 'a=b'],
    ['theme=dark', 'uid', undefined],
    ['uid', 'uid', undefined],
    [undefined, 'uid', undefined],
  ])('%j, cookie %s: %j', (header, name, value) => {
    expect(cookieValue(header, name)).toBe(value);
  });
});

describe('createVersionPicker', () => {
  const salt = 'feature:v2_traffic_percentage';
  const picker = createVersionPicker({ stickyHeader: 'X-User-Id', stickyCookie: 'uid', salt, random: () => 0.5 });

  it('sends everything to the baseline at 0 % and to the canary at 100 %, sticky or not', () => {
    for (const headers of [{}, { 'x-user-id': 'u1' }, { cookie: 'uid=u1' }]) {
      expect(picker(headers, 0)).toBe('baseline');
      expect(picker(headers, 100)).toBe('canary');
    }
  });

  it('hashes the header (names match in any case), else the cookie; the header wins', () => {
    const byHeader = (user: string, weight: number) => picker({ 'x-user-id': user }, weight);
    for (let i = 0; i < 100; i++) {
      const user = `user-${i}`;
      const expected = sideOf(bucketOf(salt, user), 30);
      expect(byHeader(user, 30)).toBe(expected);
      expect(picker({ cookie: `theme=dark; uid=${user}` }, 30)).toBe(expected);
      expect(picker({ 'x-user-id': user, cookie: 'uid=someone-else' }, 30)).toBe(expected);
    }
  });

  it('draws at random without a sticky key (an empty key counts as none)', () => {
    const low = createVersionPicker({ stickyHeader: 'x-user-id', stickyCookie: '', salt, random: () => 0.2999 });
    const high = createVersionPicker({ stickyHeader: 'x-user-id', stickyCookie: '', salt, random: () => 0.3 });
    for (const headers of [{}, { 'x-user-id': '' }]) {
      expect(low(headers, 30)).toBe('canary');
      expect(high(headers, 30)).toBe('baseline');
    }
  });
});
