/**
 * The canary's traffic weight as the flag holds it: an integer percentage 0..100 (Argo Rollouts' `setWeight`,
 * Flagger's `stepWeight`). Every value that reaches the flag key from an operator, a rollout step or an admin request
 * goes through {@link parseWeight}; a reader of the flag uses it too, so a foreign value is named rather than used.
 */

/** The parsed weight (integer percent 0..100), or the reason the input is not one. */
export type WeightResult = { readonly ok: true; readonly weight: number } | { readonly ok: false; readonly reason: string };

/**
 * Reads a weight from an admin body, a CLI argument or the flag key.
 *
 * @param input a number or its decimal text (`25`, `"25"`, `" 25 "`); anything else is refused
 * @returns `{ok: true, weight}` for an integer 0..100; otherwise `{ok: false, reason}` naming what was wrong (never throws)
 */
export function parseWeight(input: unknown): WeightResult {
  const text = typeof input === 'number' ? String(input) : typeof input === 'string' ? input.trim() : undefined;
  if (text === undefined)
    return { ok: false, reason: `must be an integer percentage 0..100 (got a ${input === null ? 'null' : typeof input})` };
  const shown = text.length > 20 ? `${text.slice(0, 20)}…` : text;
  if (!/^[0-9]{1,3}$/.test(text)) return { ok: false, reason: `must be an integer percentage 0..100 (got ${JSON.stringify(shown)})` };
  const weight = Number(text);
  if (weight > 100) return { ok: false, reason: `must be an integer percentage 0..100 (got ${weight})` };
  return { ok: true, weight };
}

/** The flag's weight as an evaluator last read it, and the slot from which it has held that value. */
export interface WeightSeen {
  /** Percent 0..100, or null when the flag was unset or unreadable. */
  readonly percent: number | null;
  /** First slot read with this value; -Infinity for the first value ever read (its start is unknown: taken as steady). */
  readonly sinceSlot: number;
}

/**
 * Follows the weight from one evaluation to the next, so that a window mixing two weights is known as such.
 * @param seen the previous state, or null before the first read
 * @param percent the weight read for `slot`
 * @param slot the evaluated (last) slot of the window
 * @returns the same state while the weight is unchanged, else a new one starting at `slot`
 */
export function observeWeight(seen: WeightSeen | null, percent: number | null, slot: number): WeightSeen {
  if (seen !== null && seen.percent === percent) return seen;
  return { percent, sinceSlot: seen === null ? Number.NEGATIVE_INFINITY : slot };
}

/**
 * Whether the whole window ran under the weight now read: the judge's `flagSteady` (the traffic-share check holds a
 * share against the weight only then).
 * @param firstSlot the window's first slot
 */
export const weightSteadySince = (seen: WeightSeen, firstSlot: number): boolean => seen.sinceSlot < firstSlot;
