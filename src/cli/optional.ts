/**
 * The sidecar image installs no optional packages (Dockerfile: npm ci --omit=dev --omit=optional): `demo`, `load` and
 * `dashboards` import them and need a clone's `npm ci`. The CLI names the missing one instead of printing a stack.
 */

/** package.json's optionalDependencies: the demo's, the load profiles' and the dashboards' packages. */
export const OPTIONAL_PACKAGES: readonly string[] = [
  '@grafana/grafana-foundation-sdk',
  '@stdlib/random-base-lognormal',
  '@stdlib/random-base-randu',
  'autocannon',
  'uplot',
];

/** The optional package a failed import names (`Cannot find package 'autocannon' imported from ...`), or null. */
export function missingOptionalPackage(err: unknown): string | null {
  if ((err as { code?: unknown } | null)?.code !== 'ERR_MODULE_NOT_FOUND') return null;
  const name = /Cannot find package '([^']+)'/.exec((err as Error).message)?.[1];
  return name !== undefined && OPTIONAL_PACKAGES.includes(name) ? name : null;
}
