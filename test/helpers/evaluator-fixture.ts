/**
 * The evaluator on in-memory fakes (test/helpers/memory-*.ts) with a manual clock: one fleet's store, its traffic,
 * evaluators on it, and moving the clock to judge a given slot. Shared by the evaluator's unit tests.
 */
import { afterEach } from 'vitest';
import { Evaluator, type EvaluatorOptions, type HeldEvaluation } from '../../src/app/evaluator.ts';
import { createLogger } from '../../src/config/logger.ts';
import type { GateEvent } from '../../src/core/transitions.ts';
import type { VerdictSink } from '../../src/integrations/verdict-store.ts';
import { MemoryFlagStore } from './memory-flag-store.ts';
import { MemoryLease } from './memory-lease.ts';
import { MemoryWindowSource, type PodSlot } from './memory-window-source.ts';
import { THRESHOLDS_ONLY } from './snapshots.ts';

export const SLOT_MS = 1000;
export const SLOTS = 4;
export const LEASE_TTL_MS = 3000;
/** The first slot the tests use; slot S ends at (S + 1) x SLOT_MS. */
export const S = 1_700_000_000;
export const HEALTHY: PodSlot = { requests: 200, errors: 0, latencyUs: 20_000 };
/** 60 % errors: fails the thresholds at once, and the sequential checks' gross-error rule. */
export const FAILING: PodSlot = { requests: 200, errors: 120, latencyUs: 20_000 };
const silent = createLogger('silent');

/** The manual clock, ms since the epoch: tests set `time.now`. */
export const time = { now: 0 };
const clock = (): number => time.now;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** One fleet's store: the lease, the flag store and the windows that its sidecars share. */
export interface Store {
  readonly lease: MemoryLease;
  readonly flags: MemoryFlagStore;
  readonly source: MemoryWindowSource;
  /** Redis up or down, for all three at once. */
  reachable(up: boolean): void;
}

export function store(): Store {
  const lease = new MemoryLease(clock);
  const flags = new MemoryFlagStore(lease, '50');
  const source = new MemoryWindowSource({ baseline: 'v1', canary: 'v2' }, SLOT_MS, SLOTS);
  cleanups.push(() => source.destroy());
  return {
    lease,
    flags,
    source,
    reachable(up) {
      lease.reachable = up;
      flags.reachable = up;
      source.reachable = up;
    },
  };
}

/** Publishes slots [from, to]: a healthy baseline pod and a canary pod as given. */
export function traffic(s: Store, from: number, to: number, canary: PodSlot = HEALTHY): void {
  for (let slot = from; slot <= to; slot++) {
    s.source.put('v1', 'v1-a', slot, HEALTHY);
    s.source.put('v2', 'v2-a', slot, canary);
  }
}

/** What an evaluator hands on besides its transitions: the published verdict and the rollout driver's step. */
export interface EvaluatorSinks {
  readonly verdicts?: VerdictSink | null;
  readonly afterHeld?: (held: HeldEvaluation) => Promise<unknown>;
}

/** An evaluator on the store; `notify` takes the transitions it announces, `sinks` what it publishes and hands on. */
export function evaluatorOf(
  s: Store,
  holderId = 'a/1',
  options: Partial<EvaluatorOptions> = {},
  notify?: (event: GateEvent) => void,
  sinks: EvaluatorSinks = {},
): Evaluator {
  return new Evaluator(
    {
      holderId,
      pod: holderId.split('/')[0]!,
      slotMs: SLOT_MS,
      slots: SLOTS,
      leaseTtlMs: LEASE_TTL_MS,
      policy: THRESHOLDS_ONLY,
      consecutiveBreaches: 1,
      ...options,
    },
    {
      lease: s.lease,
      flags: s.flags,
      source: s.source,
      clock,
      logger: silent,
      notify,
      verdicts: sinks.verdicts,
      afterHeld: sinks.afterHeld,
    },
  );
}

/** Moves the clock just past the end of `slot`: the next evaluation judges the window that ends with it. */
export function after(slot: number): void {
  time.now = (slot + 1) * SLOT_MS + 50;
}

/** An evaluator `a/1` holding the lease just after `slot`, with nothing evaluated yet. */
export async function holderAfter(s: Store, slot: number, options: Partial<EvaluatorOptions> = {}): Promise<Evaluator> {
  const e = evaluatorOf(s, 'a/1', options);
  after(slot);
  await e.renewLease();
  return e;
}

/** Renews the lease and evaluates the window that ends with `slot`. */
export async function evaluateAt(e: Evaluator, slot: number) {
  after(slot);
  await e.renewLease();
  return e.evaluate();
}
