/**
 * The demo's defaults, apart from the demo itself so that the CLI can show them in `--help` without loading the demo
 * apps and autocannon into every sidecar: load seconds at most, seconds into the load when v2 regresses, offered
 * requests per second, and the canary share the rollout starts at (percent).
 */
export const DEMO_DEFAULTS = {
  healthy: false,
  durationS: 88,
  regressAtS: 20,
  regressAtWeight: 25,
  rate: 300,
  startPercentage: 10,
} as const;
