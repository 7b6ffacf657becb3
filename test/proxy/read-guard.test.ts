/**
 * The slow-read guard on its own, with a manual clock: a response held back is cut only while others wait and only
 * once it has been held for graceMs; reading again (release) clears it; its timer runs only while something is held.
 */
import { describe, expect, it } from 'vitest';
import { ReadGuard } from '../../src/proxy/read-guard.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function setup(graceMs = 20) {
  let clockMs = 0;
  let contended = false;
  const events: string[] = [];
  const guard = new ReadGuard({ graceMs, contended: () => contended, now: () => clockMs, onCut: () => events.push('cut') });
  const response = (name: string) => ({ destroy: () => events.push(`destroy ${name}`) });
  return {
    guard,
    events,
    response,
    advance: (ms: number) => (clockMs += ms),
    contend: (on: boolean) => (contended = on),
  };
}

describe('ReadGuard', () => {
  it('cuts a response held back past graceMs while others wait, and only then', async () => {
    const { guard, events, response, advance, contend } = setup();
    const a = response('a');
    guard.hold(a);
    advance(100);
    await sleep(30); // checks run: held long enough, but nobody waits
    expect(events).toEqual([]);
    contend(true);
    await sleep(30);
    expect(events).toEqual(['cut', 'destroy a']);
    expect(guard.size).toBe(0);
    guard.destroy();
  });

  it('leaves a response that reads again (released) or that was held for less than graceMs', async () => {
    const { guard, events, response, advance, contend } = setup();
    contend(true);
    const [a, b] = [response('a'), response('b')];
    guard.hold(a);
    guard.hold(b);
    advance(10);
    guard.release(a);
    await sleep(30);
    expect(events).toEqual([]);
    guard.hold(b); // held again: its wait still counts from the first hold
    advance(15);
    await sleep(30);
    expect(events).toEqual(['cut', 'destroy b']);
    guard.destroy();
  });
});
