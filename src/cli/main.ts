#!/usr/bin/env node
/**
 * The `canary-gate` command. The only code that reads argv and the environment, handles signals and sets exit codes:
 *   0 success; 1 runtime failure (or the demo saw no rollback in time); 2 bad config, bad usage, or no Redis for the demo.
 */
// First: V8 flags that must be set before the module graph below allocates (src/cli/runtime-flags.ts).
import './runtime-flags.ts';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { buildSidecar } from '../app/sidecar.ts';
import { configHash, judgePolicyOf } from '../config/policy.ts';
import type { ReplayPolicy } from '../replay/replay.ts';
import { explainDecision } from '../core/explain.ts';
import { ADMIN_TOKEN_ENV } from '../config/defaults.ts';
import { configTable } from '../config/docs.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../config/logger.ts';
import type { Config } from '../config/schema.ts';
import { CanaryGateError, ErrorCodes, exitCodeOf } from '../core/errors.ts';
import { serviceKeys } from '../core/keys.ts';
import { manualDecision } from '../core/controller.ts';
import { cleanText } from '../core/text.ts';
import { parseWeight } from '../core/weight.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { DEMO_DEFAULTS } from '../demo/defaults.ts';
import { registerLoadCommand } from '../load/command.ts';
import { notifySecretsFrom } from '../notify/sinks.ts';
import { missingOptionalPackage } from './optional.ts';
import { stagesOf, rolloutStoreOf } from '../rollout/compose.ts';
import { ROLLOUT_COMMANDS, RolloutControl, viewLines, type RolloutCommand } from '../rollout/control.ts';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

function load(file: string | undefined): Config {
  return loadConfig({ file, env: process.env });
}

/** The replay policy of a config, with alpha spent over the recording's slot length. */
function replayPolicyOf(config: Config, slotMs: number): ReplayPolicy {
  const judge = judgePolicyOf({ ...config, window: { ...config.window, slot: slotMs } });
  return {
    judge,
    consecutiveBreaches: config.policy.consecutiveBreaches,
    consecutiveNoData: config.policy.consecutiveNoData,
    slots: config.window.slots,
  };
}

function positive(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** Runs `fn` against the config's Redis with a flag store; closes the client afterwards. */
async function withFlagStore<T>(config: Config, fn: (flags: RedisFlagStore) => Promise<T>): Promise<T> {
  const logger = createLogger('silent');
  const redis = createRedisClient(config.redis, logger);
  try {
    await waitReady(redis, config.redis.connectTimeout + 1000);
    return await fn(
      new RedisFlagStore(redis, serviceKeys(config.redis.keyPrefix, config.service), flagOptionsOf(config.flag, config.policy.advisory)),
    );
  } finally {
    redis.disconnect();
  }
}

/** Who, for the audit stream: the given name (control and bidi characters removed, at most 100) or `$USER@cli`. */
const actor = (given: string | undefined): string =>
  (given === undefined ? '' : cleanText(given, 100)) || `${cleanText(process.env.USER ?? '', 100) || 'unknown'}@cli`;
/** Why, for the audit stream: control and bidi characters removed, at most 500 characters. */
const why = (given: string): string => cleanText(given, 500) || 'no reason given';

/** The --flag option: an integer percentage 0..100 (parseWeight), as the text written to the flag. */
function weightArg(text: string): string {
  const weight = parseWeight(text);
  if (!weight.ok) throw new InvalidArgumentError(weight.reason);
  return String(weight.weight);
}
/** `canary-gate rollout start|status|promote|pause|resume|abort`: the operator controls, straight on Redis. */
function registerRolloutCommand(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('drive a rollout that advances itself on evidence: start, status, promote [--full], pause, resume, abort');
  const withControl = async <T>(file: string | undefined, fn: (control: RolloutControl, config: Config) => Promise<T>): Promise<T> => {
    const config = load(file);
    const redis = createRedisClient(config.redis, createLogger('silent'));
    try {
      await waitReady(redis, config.redis.connectTimeout + 1000);
      const keys = serviceKeys(config.redis.keyPrefix, config.service);
      return await fn(new RolloutControl(rolloutStoreOf(config, redis, keys), stagesOf(config)), config);
    } finally {
      redis.disconnect();
    }
  };
  rollout
    .command('status')
    .description('print the step, weight, time at the weight, the evidence so far and what the next promotion waits for')
    .option('-c, --config <file>', 'YAML config file')
    .option('--json', 'print the status as JSON', false)
    .action(async (opts: { config?: string; json: boolean }) => {
      const view = await withControl(opts.config, (control) => control.view());
      process.stdout.write(opts.json ? `${JSON.stringify(view, null, 2)}\n` : `${viewLines(view).join('\n')}\n`);
    });
  const parseWeightArg = (text: string): number => {
    const w = parseWeight(text);
    if (!w.ok) throw new InvalidArgumentError(w.reason);
    return w.weight;
  };
  for (const command of ROLLOUT_COMMANDS) {
    const descriptions: Record<RolloutCommand, string> = {
      start: "start a rollout at the plan's first weight (refused while one is under way or the rollback latch is set)",
      promote: 'go to the next weight now, whatever the evidence (--full: to 100 %; --weight: to that weight of the plan)',
      pause: 'stop promotions; the weight stays',
      resume: 'let a paused rollout go on (sets the flag to its weight again)',
      abort: 'end the rollout and set the weight to 0',
    };
    const sub = rollout
      .command(command)
      .description(descriptions[command])
      .option('-c, --config <file>', 'YAML config file')
      .requiredOption('--reason <text>', 'why, for the audit stream')
      .requiredOption('--actor <name>', 'who, for the audit stream');
    if (command === 'promote')
      sub
        .option('--full', 'promote to 100 % at once', false)
        .option('--weight <percent>', 'promote to this weight of the plan', parseWeightArg);
    sub.action(async (opts: { config?: string; reason: string; actor: string; full?: boolean; weight?: number }) => {
      const result = await withControl(opts.config, (control) =>
        control.apply(command, { actor: actor(opts.actor), reason: why(opts.reason), full: opts.full, toWeight: opts.weight }),
      );
      if (result.outcome === 'refused') {
        process.stderr.write(`rollout ${command} refused: ${result.reason}\n`);
        process.exitCode = EXIT_FAILURE;
        return;
      }
      const flag = result.flag === null ? 'flag unchanged' : `flag = ${result.flag}`;
      process.stdout.write(`rollout ${result.record.kind}: ${result.state.status} at ${result.state.weight} % (${flag})\n`);
    });
  }
}

/** SIGTERM and SIGINT drain through `close` and exit 0 (1 if it fails); a second signal exits 1 at once. */
function drainOnSignals(close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(EXIT_FAILURE); // a second signal: leave now
    stopping = true;
    process.stdout.write(`${signal}: draining\n`);
    void close().then(
      () => process.exit(0),
      () => process.exit(EXIT_FAILURE),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export function createProgram(): Command {
  const program = new Command('canary-gate')
    .description('Catch a bad canary release in seconds and roll it back: a sidecar that judges the canary against the baseline.')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('run')
    .description('run the sidecar: proxy, recorder, publisher, evaluator and admin server')
    .option('-c, --config <file>', 'YAML config file (defaults and environment apply without one)')
    .action(async (opts: { config?: string }) => {
      const config = load(opts.config);
      const sidecar = buildSidecar(config, {
        adminToken: process.env[ADMIN_TOKEN_ENV],
        notify: { secrets: notifySecretsFrom(process.env) },
      });
      const ports = await sidecar.start();
      process.stdout.write(`canary-gate ${config.pod.name} (${config.pod.version}) proxy :${ports.proxyPort} admin :${ports.adminPort}\n`);
      drainOnSignals(() => sidecar.close());
    });

  program
    .command('route')
    .description(
      "run the router: send each request to the baseline or the canary upstream by the flag's weight, following the gate's events",
    )
    .option('-c, --config <file>', 'YAML config file (the router section; defaults and environment apply without one)')
    .action(async (opts: { config?: string }) => {
      const config = load(opts.config);
      const { buildRouter } = await import('../router/router.ts'); // a sidecar never loads the router
      const router = buildRouter(config);
      const ports = await router.start();
      const { versions, router: r } = config;
      const s = router.status();
      process.stdout.write(
        `canary-gate route ${config.service}: :${ports.port} -> ${versions.baseline} ${r.baselineUpstream} | ${versions.canary} ${r.canaryUpstream}; ` +
          `weight ${s.weightPercent} %${s.stale ? ' (flag not read yet: Redis unreachable)' : ''}; admin :${ports.adminPort}\n`,
      );
      drainOnSignals(() => router.close());
    });

  program
    .command('check-config')
    .description('validate a config file (and the environment); print ok, or each problem with its field and exit 2')
    .argument('<file>', 'YAML config file')
    .action((file: string) => {
      load(file);
      process.stdout.write('ok\n');
    });

  program
    .command('reset')
    .description('clear the rollback latch (decision record) and optionally set the flag, recorded in the audit stream')
    .option('-c, --config <file>', 'YAML config file')
    .option('--flag <percent>', "set the flag to the canary's percentage, an integer 0..100; left as is without it", weightArg)
    .option('--reason <text>', 'why, for the audit stream', 'reset from the CLI')
    .option('--actor <name>', 'who, for the audit stream (default $USER@cli)')
    .action(async (opts: { config?: string; flag?: string; reason: string; actor?: string }) => {
      const config = load(opts.config);
      await withFlagStore(config, (flags) => flags.reset(actor(opts.actor), why(opts.reason), opts.flag ?? null, Date.now()));
      process.stdout.write(
        `reset: latch cleared for ${config.service}${opts.flag === undefined ? '' : `, ${config.flag.key} = ${opts.flag}`}\n`,
      );
    });

  program
    .command('rollback')
    .description('roll back by hand: set the flag and latch a manual decision')
    .option('-c, --config <file>', 'YAML config file')
    .requiredOption('--reason <text>', 'why, for the decision record and the audit stream')
    .option('--actor <name>', 'who (default $USER@cli)')
    .action(async (opts: { config?: string; reason: string; actor?: string }) => {
      const config = load(opts.config);
      const decision = manualDecision({
        reason: why(opts.reason),
        by: actor(opts.actor),
        atMs: Date.now(),
        configHash: configHash(config),
      });
      const outcome = await withFlagStore(config, (flags) => flags.rollback(decision, 0));
      process.stdout.write(
        outcome === 'written' ? `rolled back: ${config.flag.key} = ${config.flag.rollbackValue}\n` : `nothing written: ${outcome}\n`,
      );
    });

  program
    .command('explain')
    .description('print the latched rollback decision (or one from the audit stream) as a table: every check with its evidence')
    .option('-c, --config <file>', 'YAML config file')
    .option('--id <entry>', 'an audit stream entry id (XRANGE), instead of the latched decision')
    .action(async (opts: { config?: string; id?: string }) => {
      const config = load(opts.config);
      const found = await withFlagStore(config, (flags) => (opts.id === undefined ? flags.latch() : flags.auditDecision(opts.id)));
      if (found === null) {
        process.stdout.write(
          `no rollback decision for ${config.service}${opts.id === undefined ? ' is latched' : ` in audit entry ${opts.id}`}\n`,
        );
        process.exitCode = EXIT_FAILURE;
        return;
      }
      if (found === 'corrupt')
        throw new CanaryGateError(
          ErrorCodes.PAYLOAD_CORRUPT,
          `the decision record of ${config.service} is not a decision (edited by hand?)`,
        );
      process.stdout.write(explainDecision(found));
    });

  program
    .command('record')
    .description(
      'record the fleet window of a live service into an NDJSON file, for replay and tune (holds no lease, writes nothing to Redis)',
    )
    .option('-c, --config <file>', 'YAML config file (service, versions, window, redis)')
    .requiredOption('--out <file>', 'the recording to write')
    .option('--duration <s>', 'seconds to record', positive, 600)
    .action(async (opts: { config?: string; out: string; duration: number }) => {
      const config = load(opts.config);
      const { recordFleet } = await import('../replay/record.ts');
      const counts = await recordFleet(config, { out: opts.out, durationMs: opts.duration * 1000, logger: createLogger(config.log.level) });
      process.stdout.write(`recorded ${counts.slots} pod-slots and ${counts.flags} evaluations into ${opts.out}\n`);
    });

  program
    .command('replay')
    .description(
      're-run the judge and the controller over recordings, deterministically, and print when and why the canary would have been rolled back',
    )
    .option('--policy <file>', 'YAML config whose policy and window.slots to replay with (default: the defaults)')
    .argument('<recordings...>', 'NDJSON recordings written by canary-gate record')
    .action(async (files: string[], opts: { policy?: string }) => {
      const { readRecording } = await import('../replay/recording.ts');
      const { replay } = await import('../replay/replay.ts');
      const { replayReport } = await import('../replay/report.ts');
      const config = loadConfig({ file: opts.policy });
      for (const file of files) {
        const recording = await readRecording(file);
        const result = replay(recording, replayPolicyOf(config, recording.meta.slotMs));
        process.stdout.write(replayReport(result, recording.meta.canary));
      }
    });

  program
    .command('tune')
    .description('sweep thresholds over labelled recordings and print false and missed rollbacks per setting')
    .option('--policy <file>', 'YAML config the sweep starts from (default: the defaults)')
    .option('--healthy <files...>', 'recordings of canaries that should not be rolled back', [])
    .option('--regressed <files...>', 'recordings of canaries that should be rolled back', [])
    .action(async (opts: { policy?: string; healthy: string[]; regressed: string[] }) => {
      const { readRecording } = await import('../replay/recording.ts');
      const { tune } = await import('../replay/tune.ts');
      const { tuneReport } = await import('../replay/report.ts');
      if (opts.healthy.length + opts.regressed.length === 0) throw new InvalidArgumentError('give --healthy or --regressed recordings');
      const healthy = await Promise.all(opts.healthy.map(readRecording));
      const regressed = await Promise.all(opts.regressed.map(readRecording));
      const slotMs = (healthy[0] ?? regressed[0])!.meta.slotMs;
      const rows = tune(replayPolicyOf(loadConfig({ file: opts.policy }), slotMs), healthy, regressed);
      process.stdout.write(tuneReport(rows, healthy.length, regressed.length));
    });

  program
    .command('config-table')
    .description("print the README's configuration table, generated from config/example.yaml")
    .action(() => {
      process.stdout.write(`${configTable()}\n`);
    });

  program
    .command('dashboards')
    .description('write the bundled Grafana dashboards (JSON, generated with the Grafana Foundation SDK) into a folder')
    .option('--out <dir>', 'folder to write canary-overview.json and sidecar-health.json into', 'dashboards')
    .action(async (opts: { out: string }) => {
      const { writeDashboards } = await import('../dashboards/index.ts');
      for (const path of await writeDashboards(opts.out)) process.stdout.write(`wrote ${path}\n`);
    });

  program
    .command('demo')
    .description(
      'run the demo: two apps, two sidecars, canary-gate route and load; a rollout 5 -> 25 -> 50 -> 100 % advances on evidence, v2 regresses at 25 % and is rolled back',
    )
    .option('--healthy', 'do not regress v2; succeed when the rollout completes at 100 %', false)
    .option('--duration <s>', 'seconds of load at most', positive, DEMO_DEFAULTS.durationS)
    .option('--regress-at-weight <percent>', 'the rollout weight at which v2 regresses', positive, DEMO_DEFAULTS.regressAtWeight)
    .option('--rate <rps>', 'offered load, requests per second', positive, DEMO_DEFAULTS.rate)
    .action(async (opts: { healthy: boolean; duration: number; regressAtWeight: number; rate: number }) => {
      const { runDemo } = await import('../demo/scenario.ts'); // the demo's apps and autocannon stay out of a sidecar's memory
      const code = await runDemo({
        healthy: opts.healthy,
        durationS: opts.duration,
        regressAtWeight: opts.regressAtWeight,
        rate: opts.rate,
        startPercentage: DEMO_DEFAULTS.startPercentage,
        env: process.env,
        print: (line) => process.stdout.write(`${line}\n`),
      });
      process.exit(code);
    });

  registerLoadCommand(program);
  registerRolloutCommand(program);
  return program;
}

/** Parses argv, runs the command, maps errors to exit codes. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await createProgram().parseAsync(argv as string[]);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    if (err instanceof CanaryGateError) {
      process.stderr.write(`${err.message}\n`);
      for (const line of err.details) process.stderr.write(`  ${line}\n`);
      process.exit(exitCodeOf(err));
    }
    const optional = missingOptionalPackage(err);
    if (optional !== null) {
      process.stderr.write(
        `canary-gate: this command needs the optional package ${optional}, which the sidecar image leaves out; run it from a clone after npm ci\n`,
      );
      process.exit(EXIT_USAGE);
    }
    process.stderr.write(`canary-gate: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(EXIT_FAILURE);
  }
}

await main(process.argv);
