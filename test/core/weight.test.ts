import { expect, it } from 'vitest';
import { parseWeight } from '../../src/core/weight.ts';

it.each([
  [0, 0],
  [100, 100],
  ['25', 25],
  [' 5 ', 5],
  ['007', 7],
])('accepts %j as %d', (input, weight) => {
  expect(parseWeight(input)).toEqual({ ok: true, weight });
});

it.each([-5, 101, 2.5, 1e308, Number.NaN, '', 'NaN; DROP', '-5', '1e+308', '1'.repeat(15000), '0x10', null, undefined, {}, [5]])(
  'refuses %j with a reason',
  (input) => {
    const r = parseWeight(input);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/^must be an integer percentage 0\.\.100/);
      expect(r.reason.length).toBeLessThan(100);
    }
  },
);
