/**
 * A rollout's plan: the config's steps (Argo Rollouts' vocabulary) turned into stages, one per weight, each with its
 * least time and whether a person must let it go on. Pure; no clock.
 *
 *   steps: [{setWeight: 5}, {pause: {duration: 10m}}, {setWeight: 25}, {pause: {}}, {setWeight: 100}]
 *   stages: 5 % for max(minStepTime, 10 min); 25 % for minStepTime, then wait for a person; 100 % (completed)
 *
 * A plan whose last weight is below 100 gets a final 100 % stage: a rollout that has gone through every step is
 * promoted fully, as Argo Rollouts does after its last step. Reaching 100 % completes the rollout.
 */

/** One configured step: a weight to set, or a pause (`durationMs` null: until a person resumes). */
export type RolloutStep = { readonly setWeight: number } | { readonly pause: { readonly durationMs: number | null } };

/** One weight of the plan and what it takes to leave it. */
export interface RolloutStage {
  /** The canary's weight at this stage, integer percent 1..100. */
  readonly weight: number;
  /** Least time at the weight before a promotion, ms. */
  readonly minMs: number;
  /** A `pause: {}` follows the weight: once the evidence holds, the rollout pauses until a person resumes or promotes. */
  readonly waitForPerson: boolean;
}

/**
 * The stages of `steps`.
 * @param steps validated steps (the config schema: the first a setWeight, weights rising)
 * @param minStepMs rollout.minStepTime, ms; a pause's duration after a weight raises that weight's minimum to it
 */
export function rolloutStages(steps: readonly RolloutStep[], minStepMs: number): RolloutStage[] {
  const stages: Array<{ weight: number; minMs: number; waitForPerson: boolean }> = [];
  for (const step of steps) {
    if ('setWeight' in step) {
      stages.push({ weight: step.setWeight, minMs: step.setWeight >= 100 ? 0 : minStepMs, waitForPerson: false });
      continue;
    }
    const current = stages[stages.length - 1];
    if (current === undefined) continue;
    if (step.pause.durationMs === null) current.waitForPerson = true;
    else current.minMs = Math.max(current.minMs, step.pause.durationMs);
  }
  if (stages.length === 0 || stages[stages.length - 1]!.weight < 100) stages.push({ weight: 100, minMs: 0, waitForPerson: false });
  return stages;
}

/** The plan as one line for people: `1 % (5 min) -> 5 % (5 min, then a person) -> 100 %`. */
export function describeStages(stages: readonly RolloutStage[]): string {
  return stages
    .map((s) =>
      s.weight === 100 ? '100 %' : `${s.weight} % (${formatDuration(s.minMs / 1000)}${s.waitForPerson ? ', then a person' : ''})`,
    )
    .join(' -> ');
}

/** Seconds for people: `45 s`, `12 min`, `2.0 h`. */
export function formatDuration(s: number): string {
  return s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}
