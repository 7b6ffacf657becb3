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
