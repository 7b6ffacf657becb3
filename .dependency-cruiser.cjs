/**
 * The layer rule of DESIGN.md, checked by `npm run lint` (dependency-cruiser): dependencies point inward.
 *   core      imports nothing outside core but hdr-histogram-js, the @stdlib statistics and node:zlib (no I/O)
 *   config    imports core
 *   proxy, fleet, flag, metrics, notify (adapters) import core and config, not each other
 *   app       composes everything above; cli, demo, load, replay and dashboards sit outside it
 *   router    composes the proxy's forwarding, the Redis client, the flag store and metrics into canary-gate route;
 *             a sibling of app (neither imports the other), run by the CLI and, later, the demo
 *   integrations  the admin routes of Argo Rollouts and Flagger: core, config, the fleet reader and the admin server's
 *             route types; the sidecar composition (app) registers them, never the reverse
 * Paths match `src/<layer>/` anywhere in the path, so that test/layers.test.ts can prove each rule fires on a fixture.
 */
const layer = (name) => `(^|/)src/${name}/`;
const ADAPTERS = ['proxy', 'fleet', 'flag', 'metrics', 'notify'];

module.exports = {
  forbidden: [
    {
      name: 'core-is-pure',
      comment: 'src/core holds the histogram, windows, judge and controller: no I/O, no adapter, no library but hdr-histogram-js, @stdlib statistics and node:zlib.',
      severity: 'error',
      from: { path: layer('core') },
      to: { pathNot: [layer('core'), '(^|/)node_modules/(hdr-histogram-js|@stdlib/stats-)', '^zlib$', '^node:zlib$'] },
    },
    {
      name: 'config-imports-core-only',
      comment: 'src/config may use core types, nothing of the adapters or the composition.',
      severity: 'error',
      from: { path: layer('config') },
      to: { path: `(^|/)src/(?!config/|core/)` },
    },
    ...ADAPTERS.map((name) => ({
      name: `${name}-is-an-adapter`,
      comment: `src/${name} may import core and config, not another adapter and not the composition.`,
      severity: 'error',
      from: { path: layer(name) },
      to: { path: `(^|/)src/(?!${name}/|core/|config/)` },
    })),
    {
      name: 'app-is-inside-the-cli',
      comment: 'src/app composes the sidecar; the CLI, the demo, load profiles, replay and dashboards use it, never the reverse.',
      severity: 'error',
      from: { path: layer('app') },
      to: { path: '(^|/)src/(cli|demo|load|replay|dashboards)/' },
    },
    {
      name: 'router-is-a-composition',
      comment: 'src/router (canary-gate route) may import core, config and the adapters; the CLI and the demo run it, never the reverse, and it stays apart from the sidecar composition.',
      severity: 'error',
      from: { path: layer('router') },
      to: { path: '(^|/)src/(app|cli|demo|load|replay|dashboards)/' },
    },
    {
      name: 'integrations-are-routes',
      comment: 'src/integrations answers Argo Rollouts and Flagger from core, config, the fleet reader and the admin server; app registers its routes, never the reverse.',
      severity: 'error',
      from: { path: layer('integrations') },
      to: { path: '(^|/)src/(?!integrations/|core/|config/|fleet/|metrics/)' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '(^|/)src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
