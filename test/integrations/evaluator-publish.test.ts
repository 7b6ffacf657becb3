/**
 * The lease holder publishes each evaluation's verdict with the state and latch it left (src/app/evaluator.ts), on the
 * in-memory fakes of test/helpers with a manual clock: only while holding, after the controller stepped, and a sink
 * that refuses is counted, never thrown.
 */
import { expect, it } from 'vitest';
import type { Evaluator } from '../../src/app/evaluator.ts';
import type { HeldVerdict, VerdictSink } from '../../src/integrations/verdict-store.ts';
import { evaluateAt, evaluatorOf, FAILING, S, SLOTS, type Store, store, traffic } from '../helpers/evaluator-fixture.ts';

class RecordingSink implements VerdictSink {
  readonly published: HeldVerdict[] = [];
  failWith: string | null = null;
  async publish(held: HeldVerdict): Promise<boolean> {
    if (this.failWith !== null) throw new Error(this.failWith);
    this.published.push(held);
    return true;
  }
}

function evaluator(s: Store, holderId: string, sink: VerdictSink): Evaluator {
  return evaluatorOf(s, holderId, {}, undefined, { verdicts: sink });
}

it('publishes every verdict of the holder with its token and the state after the step; a non-holder publishes nothing', async () => {
  const s = store();
  const sink = new RecordingSink();
  const other = new RecordingSink();
  const a = evaluator(s, 'a/1', sink);
  const b = evaluator(s, 'b/1', other);
  traffic(s, S - SLOTS, S);
  const event = await evaluateAt(a, S);
  expect(await evaluateAt(b, S)).toBeNull();
  expect(other.published).toEqual([]);
  expect(sink.published).toHaveLength(1);
  expect(sink.published[0]).toMatchObject({
    holder: 'a/1',
    fencingToken: a.status().fencingToken,
    state: { phase: 'healthy' },
    latch: null,
  });
  expect(sink.published[0]!.verdict).toBe(event!.verdict);

  traffic(s, S + 1, S + 1, FAILING);
  await evaluateAt(a, S + 1);
  expect(sink.published).toHaveLength(2);
  expect(sink.published[1]!.verdict.outcome).toBe('fail');
  // The rollback this verdict decided is in the same record: readers see the latch with the verdict that set it.
  expect(sink.published[1]).toMatchObject({ state: { phase: 'rolled_back' }, latch: { state: 'rolled_back', trigger: 'automatic' } });
});

it('counts a sink that refuses as a Redis error and carries on', async () => {
  const s = store();
  const sink = new RecordingSink();
  const a = evaluator(s, 'a/1', sink);
  traffic(s, S - SLOTS, S + 1);
  sink.failWith = 'connection lost';
  const event = await evaluateAt(a, S);
  expect(event?.verdict?.outcome).toBe('pass');
  expect(a.status()).toMatchObject({ lastError: 'verdict publish: connection lost', redisErrors: 1 });
  sink.failWith = null;
  await evaluateAt(a, S + 1);
  expect(a.status().lastError).toBeNull();
  expect(sink.published).toHaveLength(1);
});
