import { expect, it } from 'vitest';
import { InFlight } from '../../src/proxy/in-flight.ts';

/** Runs `ops` ('+a' adds a, '-a' frees a's slot) and returns the items in flight, in slot order, and the size. */
function run(ops: readonly string[]): { items: string[]; size: number; slots: number[] } {
  const inFlight = new InFlight<{ name: string }>();
  const slotOf = new Map<string, number>();
  const slots: number[] = [];
  for (const op of ops) {
    const name = op.slice(1);
    if (op.startsWith('+')) {
      const slot = inFlight.add({ name });
      slotOf.set(name, slot);
      slots.push(slot);
    } else inFlight.delete(slotOf.get(name)!);
  }
  return { items: [...inFlight].map((i) => i.name), size: inFlight.size, slots };
}

it.each<[string, string[], string[], number[]]>([
  ['adds in order', ['+a', '+b', '+c'], ['a', 'b', 'c'], [0, 1, 2]],
  ['frees a slot and reuses it for the next item', ['+a', '+b', '-a', '+c'], ['c', 'b'], [0, 1, 0]],
  ['reuses the last freed slot first', ['+a', '+b', '+c', '-a', '-c', '+d', '+e'], ['e', 'b', 'd'], [0, 1, 2, 2, 0]],
  ['ignores a slot freed twice (the size stays right)', ['+a', '+b', '-a', '-a'], ['b'], [0, 1]],
  ['empties', ['+a', '-a'], [], [0]],
])('%s', (_name, ops, items, slots) => {
  const r = run(ops);
  expect(r.items).toEqual(items);
  expect(r.size).toBe(items.length);
  expect(r.slots).toEqual(slots);
});

it('grows its array only to the largest concurrency seen, however many items pass through', () => {
  const inFlight = new InFlight<object>();
  const held: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    held.push(inFlight.add({}));
    if (held.length > 16) inFlight.delete(held.shift()!);
  }
  expect(inFlight.size).toBe(16);
  expect(Math.max(...held)).toBeLessThan(17);
});
