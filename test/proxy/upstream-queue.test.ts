/**
 * The bounded FIFO in front of the upstream pool, on its own: who starts, in which order, who is turned away and
 * when (never before timeoutMs by its clock), and what a cancelled waiter does (nothing).
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { UpstreamQueue } from '../../src/proxy/upstream-queue.ts';

const now = (): number => performance.now();

/** A queue whose callbacks write what happened, in order, as `start a 12` / `expire b 30` (ms waited, rounded down). */
function tracedQueue(
  limit: number,
  timeoutMs: number,
): { queue: UpstreamQueue; events: string[]; waits: Record<string, number>; enter: (name: string) => ReturnType<UpstreamQueue['enter']> } {
  const queue = new UpstreamQueue(limit, timeoutMs, now);
  const events: string[] = [];
  const waits: Record<string, number> = {};
  const enter = (name: string): ReturnType<UpstreamQueue['enter']> =>
    queue.enter(
      (waitedMs) => {
        events.push(`start ${name}`);
        waits[name] = waitedMs;
      },
      (waitedMs) => {
        events.push(`expire ${name}`);
        waits[name] = waitedMs;
      },
    );
  return { queue, events, waits, enter };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('UpstreamQueue', () => {
  it('starts at once below the limit, queues at it, and hands a freed place to the oldest waiter', () => {
    const { queue, events, waits, enter } = tracedQueue(2, 10_000);
    expect([enter('a'), enter('b')]).toEqual([null, null]);
    enter('c');
    enter('d');
    expect(events).toEqual(['start a', 'start b']);
    expect([queue.inFlight, queue.queued]).toEqual([2, 2]);
    queue.leave();
    expect(events).toEqual(['start a', 'start b', 'start c']);
    expect(waits.c).toBeGreaterThanOrEqual(0);
    expect([queue.inFlight, queue.queued]).toEqual([2, 1]);
    queue.leave();
    queue.leave();
    queue.leave();
    expect(events.at(-1)).toBe('start d');
    expect([queue.inFlight, queue.queued]).toEqual([0, 0]);
    queue.destroy();
  });

  it('queues a newcomer behind waiters even when a place is free, so that nobody overtakes', () => {
    const { queue, events, enter } = tracedQueue(1, 10_000);
    enter('a');
    enter('b');
    queue.leave(); // b starts
    enter('c'); // waits: b runs
    expect(events).toEqual(['start a', 'start b']);
    queue.leave();
    expect(events).toEqual(['start a', 'start b', 'start c']);
    queue.destroy();
  });

  it('turns waiters away in arrival order once timeoutMs has passed, never sooner', async () => {
    const { queue, events, waits, enter } = tracedQueue(1, 40);
    enter('a');
    enter('b');
    await sleep(15);
    enter('c');
    await sleep(100);
    expect(events).toEqual(['start a', 'expire b', 'expire c']);
    expect(waits.b).toBeGreaterThanOrEqual(40);
    expect(waits.c).toBeGreaterThanOrEqual(40);
    expect([queue.inFlight, queue.queued]).toEqual([1, 0]);
    queue.destroy();
  });

  it('a cancelled waiter neither starts nor expires, and the one behind it keeps its own deadline', async () => {
    const { queue, events, waits, enter } = tracedQueue(1, 60);
    enter('a');
    const b = enter('b');
    await sleep(20);
    enter('c');
    queue.cancel(b!);
    queue.cancel(b!); // twice is harmless
    expect(queue.queued).toBe(1);
    await sleep(150);
    expect(events).toEqual(['start a', 'expire c']);
    // Not turned away at b's deadline (c would have waited about 40 ms then).
    expect(waits.c).toBeGreaterThanOrEqual(60);
    queue.leave();
    expect([queue.inFlight, queue.queued]).toEqual([0, 0]);
    queue.destroy();
  });
});
