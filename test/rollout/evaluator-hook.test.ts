/**
 * The evaluator drives the rollout: after each evaluation it judged from a window it read while holding the lease, it
 * hands the verdict, its fencing token and each slot's canary requests to the rollout driver; never while another
 * sidecar holds the lease, and never on an evaluation that could not read the window (no verdict, no evidence).
 */
import { describe, expect, it } from 'vitest';
import { Evaluator, type HeldEvaluation } from '../../src/app/evaluator.ts';
import { createLogger } from '../../src/config/logger.ts';
import { after, evaluateAt, LEASE_TTL_MS, S, SLOT_MS, SLOTS, store, time, traffic, type Store } from '../helpers/evaluator-fixture.ts';
import { THRESHOLDS_ONLY } from '../helpers/snapshots.ts';

function withHook(s: Store, holderId: string, seen: HeldEvaluation[]): Evaluator {
  return new Evaluator(
    {
      holderId,
      pod: holderId.split('/')[0]!,
      slotMs: SLOT_MS,
      slots: SLOTS,
      leaseTtlMs: LEASE_TTL_MS,
      policy: THRESHOLDS_ONLY,
      consecutiveBreaches: 1,
    },
    s.lease,
    s.flags,
    s.source,
    () => time.now,
    createLogger('silent'),
    () => undefined,
    null,
    async (held) => {
      seen.push(held);
    },
  );
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
