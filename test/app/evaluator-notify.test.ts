/**
 * What the evaluator announces, on the in-memory fakes: only as lease holder; a rollback when it is written (not
 * while it waits for Redis), one written by someone else when the latch is read, a reset with who and why and the
 * decision it cleared; the first latch read of a tenure announces nothing (the writer or the previous holder did).
 */
import { describe, expect, it } from 'vitest';
import { manualDecision } from '../../src/core/controller.ts';
import type { GateEvent } from '../../src/core/transitions.ts';
import { evaluateAt, evaluatorOf, FAILING, S, SLOT_MS, store, time, traffic, type Store } from '../helpers/evaluator-fixture.ts';
import { THRESHOLDS_ONLY } from '../helpers/snapshots.ts';

/** An evaluator on `s` whose announcements land in `events`. */
function announcing(s: Store, holderId = 'a/1', options = {}) {
  const events: GateEvent[] = [];
  const evaluator = evaluatorOf(s, holderId, options, (e) => events.push(e));
  return { evaluator, events, kinds: () => events.map((e) => e.kind) };
}

const onRedisUnreachable = { policy: { ...THRESHOLDS_ONLY, noData: { ...THRESHOLDS_ONLY.noData, redisUnreachable: 'rollback' as const } } };

describe('Evaluator: announcements', () => {
  it('announces an automatic rollback once, when it is written', async () => {
    const s = store();
    traffic(s, S, S + 8, FAILING);
    const { evaluator, events, kinds } = announcing(s);
    const decided = (await evaluateAt(evaluator, S + 3))?.decisionWritten;
    for (let slot = S + 4; slot <= S + 8; slot++) await evaluateAt(evaluator, slot);
    expect(kinds()).toEqual(['rolled_back']);
    expect(events[0]).toEqual({ kind: 'rolled_back', atMs: decided!.atMs, advisory: false, decision: decided });
  });

  it('announces a decision that waited for Redis when it is written, not when it was decided', async () => {
    const s = store();
    traffic(s, S, S + 10);
    const { evaluator, kinds } = announcing(s, 'a/1', onRedisUnreachable);
    await evaluateAt(evaluator, S + 4);
    s.reachable(false);
    await evaluator.evaluate();
    await evaluateAt(evaluator, S + 5);
    await evaluateAt(evaluator, S + 6);
    expect(evaluator.status().pending).not.toBeNull();
    // Three failing evaluations on a Redis outage: a breach, then the decision; nothing written yet.
    expect(kinds()).toEqual(['breaching']);
    s.reachable(true);
    await evaluateAt(evaluator, S + 7);
    expect(kinds()).toEqual(['breaching', 'rolled_back']);
  });

  it('announces a rollback and a reset made by someone else (the CLI) when it reads the latch', async () => {
    const s = store();
    traffic(s, S, S + 10);
    const { evaluator, events, kinds } = announcing(s);
    await evaluateAt(evaluator, S + 3);
    const manual = manualDecision({ reason: 'by hand', by: 'oncall@cli', atMs: time.now });
    await s.flags.rollback(manual, 0);
    await evaluateAt(evaluator, S + 4);
    await evaluateAt(evaluator, S + 5);
    await s.flags.reset('alice@cli', 'v2.0.1 fixes it', '5', time.now);
    await evaluateAt(evaluator, S + 6);
    await evaluateAt(evaluator, S + 7);
    expect(kinds()).toEqual(['rolled_back', 'reset']);
    expect(events[0]).toMatchObject({ decision: manual });
    expect(events[1]).toEqual({
      kind: 'reset',
      atMs: (S + 6) * SLOT_MS + 50,
      advisory: false,
      actor: 'alice@cli',
      reason: 'v2.0.1 fixes it',
      decision: manual,
    });
  });

  it('announces a reset and a new rollback that both came between two reads', async () => {
    const s = store();
    traffic(s, S, S + 10, FAILING);
    const { evaluator, kinds } = announcing(s);
    await evaluateAt(evaluator, S + 3);
    await s.flags.reset('alice', 'retry', '5', time.now);
    await s.flags.rollback(manualDecision({ reason: 'again', by: 'bob', atMs: time.now + 1 }), 0);
    await evaluateAt(evaluator, S + 4);
    expect(kinds()).toEqual(['rolled_back', 'reset', 'rolled_back']);
  });

  it('announces nothing on the first read of a tenure: a latch already there was announced by its writer', async () => {
    const s = store();
    traffic(s, S, S + 10, FAILING);
    s.flags.record = manualDecision({ reason: 'earlier', by: 'oncall', atMs: S * SLOT_MS });
    const { evaluator, kinds } = announcing(s);
    for (let slot = S + 3; slot <= S + 6; slot++) await evaluateAt(evaluator, slot);
    expect(kinds()).toEqual([]);
  });

  it('announces a manual rollback and a reset applied through it only while holding the lease', async () => {
    const s = store();
    traffic(s, S, S + 10);
    const holder = announcing(s, 'a/1');
    const other = announcing(s, 'b/1');
    await evaluateAt(holder.evaluator, S + 3);
    await evaluateAt(other.evaluator, S + 3); // b does not get the lease
    const manual = manualDecision({ reason: 'by hand', by: 'oncall', atMs: time.now });
    for (const { evaluator } of [holder, other]) evaluator.latchManual(manual);
    for (const { evaluator } of [holder, other]) evaluator.clearAfterReset({ atMs: time.now + 1, actor: 'alice', reason: 'fixed' });
    expect(holder.kinds()).toEqual(['rolled_back', 'reset']);
    expect(holder.events[1]).toMatchObject({ actor: 'alice', reason: 'fixed', decision: manual });
    expect(other.kinds()).toEqual([]);
    // The next read of the latch finds what the holder already announced: nothing more.
    await evaluateAt(holder.evaluator, S + 4);
    expect(holder.kinds()).toEqual(['rolled_back', 'reset']);
  });

  it('announces a decision written again after Redis lost it as the same event (one notification id: sent once)', async () => {
    const s = store();
    traffic(s, S, S + 6, FAILING);
    const { evaluator, events } = announcing(s);
    await evaluateAt(evaluator, S + 3);
    s.flags.wipe();
    await evaluateAt(evaluator, S + 4);
    expect(s.flags.written).toHaveLength(2);
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual(events[0]);
  });

  it('announces the verdict transitions of its evaluations: a breach and a recovery', async () => {
    const s = store();
    traffic(s, S, S + 3);
    traffic(s, S + 4, S + 4, FAILING);
    traffic(s, S + 5, S + 12);
    // The failing slot stays in the window (4 slots) for 4 evaluations: one short of the 5 that roll back.
    const { evaluator, kinds } = announcing(s, 'a/1', { consecutiveBreaches: 5 });
    for (let slot = S + 3; slot <= S + 12; slot++) await evaluateAt(evaluator, slot);
    expect(kinds()).toEqual(['breaching', 'recovered']);
  });
});
