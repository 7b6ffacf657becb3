/**
 * The evaluator drives the rollout: after each evaluation it judged from a window it read while holding the lease, it
 * hands the verdict, its fencing token and each slot's canary requests to the rollout driver; never while another
 * sidecar holds the lease, and never on an evaluation that could not read the window (no verdict, no evidence).
 */
import { describe, expect, it } from 'vitest';
import type { Evaluator, HeldEvaluation } from '../../src/app/evaluator.ts';
import { after, evaluateAt, evaluatorOf, S, SLOT_MS, type Store, store, time, traffic } from '../helpers/evaluator-fixture.ts';

function withHook(s: Store, holderId: string, seen: HeldEvaluation[]): Evaluator {
  return evaluatorOf(s, holderId, {}, undefined, {
    afterHeld: async (held) => {
      seen.push(held);
    },
  });
}

describe('the evaluator steps the rollout', () => {
  it("hands the lease holder's verdict, token and each slot's canary requests to the driver", async () => {
    const s = store();
    traffic(s, S, S + 3);
    const seen: HeldEvaluation[] = [];
    const e = withHook(s, 'a/1', seen);
    const event = await evaluateAt(e, S + 3);
    expect(seen).toHaveLength(1);
    const held = seen[0]!;
    expect(held.verdict).toBe(event?.verdict);
    expect(held.fencingToken).toBe(e.status().fencingToken);
    expect(held.fencingToken).toBeGreaterThan(0);
    expect(held.slots.map((x) => [x.slot, x.startMs, x.canaryRequests])).toEqual(
      [S, S + 1, S + 2, S + 3].map((slot) => [slot, slot * SLOT_MS, 200]),
    );
    expect(held.nowMs).toBe(time.now);
  });

  it('does nothing on a sidecar that does not hold the lease', async () => {
    const s = store();
    traffic(s, S, S + 3);
    const holderSeen: HeldEvaluation[] = [];
    const otherSeen: HeldEvaluation[] = [];
    const holder = withHook(s, 'a/1', holderSeen);
    const other = withHook(s, 'b/1', otherSeen);
    await evaluateAt(holder, S + 3);
    await evaluateAt(other, S + 3);
    expect([holderSeen.length, otherSeen.length]).toEqual([1, 0]);
  });

  it('does nothing when the window cannot be read (no verdict, so no evidence)', async () => {
    const s = store();
    traffic(s, S, S + 3);
    const seen: HeldEvaluation[] = [];
    const e = withHook(s, 'a/1', seen);
    after(S + 3);
    await e.renewLease();
    s.source.reachable = false;
    expect((await e.evaluate())?.verdict).toBeNull();
    expect(seen).toHaveLength(0);
  });
});
