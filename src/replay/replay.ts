/**
 * Replays a recording through the judge and the controller, deterministically: the same recording and policy give
 * the same evaluations. For each slot from the first recorded to the last, it merges the pod-slots recorded for it
 * into rolling windows of `slots` slots (as the lease holder's FleetReader would), judges with the flag recorded for
 * that slot, and steps the controller, stopping at the first rollback decision (the latch).
 */
import type { ControllerState, RollbackDecision } from '../core/controller.ts';
import { initialState, step } from '../core/controller.ts';
import { initHistograms } from '../core/histogram.ts';
import { EMPTY_DETECTOR, type DetectorState } from '../core/detector.ts';
import { evaluateWindow, type JudgePolicy } from '../core/judge.ts';
import { FleetWindows } from '../core/fleet-windows.ts';
import type { Verdict } from '../core/verdict.ts';
import type { Recording } from './recording.ts';
import { observeWeight, weightSteadySince, type WeightSeen } from '../core/weight.ts';

export interface ReplayPolicy {
  readonly judge: JudgePolicy;
  readonly consecutiveBreaches: number;
  /** Failing evaluations in a row from no-data rules alone that roll back (config policy.consecutiveNoData). */
  readonly consecutiveNoData?: number;
  /** Slots per window (config window.slots). */
  readonly slots: number;
}

export interface ReplayResult {
  readonly recording: string;
  /** Evaluations made, one per slot. */
  readonly evaluations: number;
  /** Verdicts by outcome. */
  readonly outcomes: Readonly<Record<Verdict['outcome'], number>>;
  /** The rollback decision, or null when the canary was never rolled back. */
  readonly decision: RollbackDecision | null;
  /** The slot index whose evaluation decided the rollback, or null. */
  readonly rollbackSlot: number | null;
  /** Seconds from the recording's first slot to the rollback decision, or null. */
  readonly rollbackAfterS: number | null;
  /** Payloads that did not decode, skipped. */
  readonly corrupt: number;
  /** One line per evaluation whose outcome differs from the previous one, for people. */
  readonly transitions: readonly string[];
}

/**
 * @throws nothing for bad payloads (they are skipped and counted, each pod-slot once); CanaryGateError CG_INTERNAL from FleetWindows only on a bug
 */
export function replay(recording: Recording, policy: ReplayPolicy): ReplayResult {
  initHistograms();
  const { slotMs, baseline, canary } = recording.meta;
  const windows = new FleetWindows([baseline, canary], slotMs, policy.slots);
  const bySlot = new Map<number, (typeof recording.slots)[number][]>();
  for (const s of recording.slots) {
    const list = bySlot.get(s.slot) ?? [];
    list.push(s);
    bySlot.set(s.slot, list);
  }
  const flags = new Map(recording.flags.map((f) => [f.slot, f.percent]));
  const indexes = [...bySlot.keys(), ...flags.keys()];
  const outcomes = { pass: 0, warn: 0, inconclusive: 0, fail: 0 };
  const transitions: string[] = [];
  let evaluations = 0;
  let decision: RollbackDecision | null = null;
  let rollbackSlot: number | null = null;
  let flag: number | null = null;
  let weight: WeightSeen | null = null;
  try {
    if (indexes.length === 0)
      return { recording: recording.name, evaluations, outcomes, decision, rollbackSlot, rollbackAfterS: null, corrupt: 0, transitions };
    const first = Math.min(...indexes);
    const last = Math.max(...indexes);
    let state: ControllerState = initialState(first * slotMs);
    let detector: DetectorState = EMPTY_DETECTOR;
    let previous = '';
    for (let index = first; index <= last && decision === null; index++) {
      windows.advanceTo(index);
      for (const s of bySlot.get(index) ?? []) if (windows.holds(s.version)) windows.ingest(s.version, index, s.pod, s.payload);
      if (flags.has(index)) flag = flags.get(index) ?? null;
      const read = windows.read(baseline, canary);
      const slots = { firstSlot: index - policy.slots + 1, lastSlot: index, slotMs, slotsOf: read.slotCounts };
      weight = observeWeight(weight, flag, index);
      const evaluated = evaluateWindow(
        policy.judge,
        detector,
        read.baseline,
        read.canary,
        slots,
        flag,
        weightSteadySince(weight, slots.firstSlot),
      );
      const verdict = evaluated.verdict;
      detector = evaluated.detector;
      evaluations++;
      outcomes[verdict.outcome]++;
      const next = step(
        {
          consecutiveBreaches: policy.consecutiveBreaches,
          ...(policy.consecutiveNoData === undefined ? {} : { consecutiveNoData: policy.consecutiveNoData }),
        },
        state,
        verdict,
        'replay',
      );
      state = next.state;
      const at = `+${(((index - first + 1) * slotMs) / 1000).toFixed(1)} s`;
      if (verdict.outcome !== previous) transitions.push(`${at} ${verdict.outcome}: ${verdict.reason}`);
      previous = verdict.outcome;
      if (next.decision !== null) {
        decision = next.decision;
        rollbackSlot = index;
        transitions.push(`${at} ROLLBACK: ${next.decision.reason}`);
      }
    }
    const rollbackAfterS = rollbackSlot === null ? null : ((rollbackSlot - first + 1) * slotMs) / 1000;
    return {
      recording: recording.name,
      evaluations,
      outcomes,
      decision,
      rollbackSlot,
      rollbackAfterS,
      corrupt: windows.corruptTotal,
      transitions,
    };
  } finally {
    windows.destroy();
  }
}
