import { expect, it } from 'vitest';
import { observeWeight, parseWeight, weightSteadySince, type WeightSeen } from '../../src/core/weight.ts';

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

/** Reads `percents` at slots 10, 11, ... and says, after each, whether a 3-slot window ending there ran under one weight. */
function steadiness(percents: ReadonlyArray<number | null>): boolean[] {
  let seen: WeightSeen | null = null;
  return percents.map((percent, i) => {
    const slot = 10 + i;
    seen = observeWeight(seen, percent, slot);
    return weightSteadySince(seen, slot - 2);
  });
}

it.each<[string, Array<number | null>, boolean[]]>([
  ['one weight all along (the first read is taken as steady)', [5, 5, 5], [true, true, true]],
  ['a step: unsteady for the window length, then steady', [5, 25, 25, 25, 25], [true, false, false, false, true]],
  ['two steps in a row restart the count', [5, 25, 50, 50, 50], [true, false, false, false, false]],
  ['the flag unset and set again is a change', [5, null, 5, 5, 5], [true, false, false, false, false]],
])('%s', (_name, percents, expected) => {
  expect(steadiness(percents)).toEqual(expected);
});

it('keeps the same state while the weight is unchanged', () => {
  const seen = observeWeight(null, 25, 3);
  expect(observeWeight(seen, 25, 9)).toBe(seen);
  expect(observeWeight(seen, 50, 9)).toEqual({ percent: 50, sinceSlot: 9 });
});
