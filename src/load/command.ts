/**
 * `canary-gate load PROFILE [--target URL] [--out DIR] ...`: runs a load profile, shows a progress bar on a terminal,
 * prints the summary tables, and writes the JSON result and the HTML report. Exit code 0 when the run completed
 * (1 with --expect-rollback and no rollback seen); bad profiles and refused targets are CG_CONFIG_* errors (exit 2).
 * SIGINT stops the load early and still writes the reports; a second SIGINT leaves at once.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { loadProfile, PROFILE_DEFAULTS, type LoadProfile } from './profile.ts';
import type { RunEvent, RunProgress, TimelinePoint } from './result.ts';
import { checkTarget } from './target.ts';
import { summaryTable } from './table.ts';

/** The bundled profiles' folder (loadtests/ at the package root). */
export const PROFILES_DIR = fileURLToPath(new URL('../../loadtests/', import.meta.url));

/** Default folder for results (git ignores .tmp/). */
export const DEFAULT_OUT_DIR = '.tmp/load';

/** A profile argument as a path: an existing file as is, else a bare name such as `steady` from loadtests/. */
export function resolveProfile(arg: string): string {
  if (existsSync(arg)) return arg;
  if (/^[a-z0-9][a-z0-9-]*$/.test(arg)) return `${PROFILES_DIR}${arg}.yaml`;
  return arg;
}

/**
 * The profile to run with `--demo`: one without a demo section gets the demo fleet with a healthy v2 (no
 * regression) at the default start percentage; one with a demo section, or without `--demo`, is unchanged.
 */
export function withDemo(profile: LoadProfile, demo: boolean): LoadProfile {
  if (!demo || profile.demo !== undefined) return profile;
  return { ...profile, demo: { regressAtMs: null, startPercentage: PROFILE_DEFAULTS.demoStartPercentage } };
}

/** One progress line: a bar over the run's duration, the step, requests so far and the latest p95 and flag. */
export function progressLine(point: TimelinePoint, p: RunProgress, width = 30): string {
  const done = Math.min(1, p.elapsedS / p.durationS);
  const filled = Math.round(done * width);
  const p95 = point.versions.all?.p95Ms;
  const flag = point.flag === undefined ? '' : ` flag ${point.flag ?? 'unset'}`;
  return (
    `[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${String(Math.round(done * 100)).padStart(3)} % ` +
    `${p.elapsedS.toFixed(0)}/${p.durationS} s ${p.step} ${p.offeredRps} rps ${p.requests} req` +
    `${p95 !== undefined && Number.isFinite(p95) ? ` p95 ${p95.toFixed(1)} ms` : ''}${flag}`
  );
}

/**
 * Adds the `load` subcommand to a commander program.
 * @param program the `canary-gate` program (its error handling maps CanaryGateError codes to exit codes)
 */
export function registerLoadCommand(program: Command): Command {
  return program
    .command('load')
    .description('run a load profile (loadtests/*.yaml) with autocannon; print a summary; write a JSON result and an HTML report')
    .argument('<profile>', 'profile file, or the name of a bundled one: steady, spike, sustained-1k, ramp, canary-regression')
    .option('--target <url>', "origin to load, e.g. http://127.0.0.1:8080 (default: the profile's target)")
    .option('--out <dir>', 'folder for the JSON result and the HTML report', DEFAULT_OUT_DIR)
    .option('--redis <url>', "Redis to read the flag from (default: the profile's monitor.redis.url, else REDIS_URL, else 127.0.0.1:6379)")
    .option('--allow-non-loopback', 'accept a target that is not 127.0.0.1, ::1 or localhost', false)
    .option('--expect-rollback', 'exit 1 when the flag did not turn to its rollback value during the run', false)
    .option(
      '--demo',
      'start the demo fleet for this run and send the load to its router (v2 stays healthy unless the profile has a demo section)',
      false,
    )
    .option('--no-progress', 'no progress bar, even on a terminal')
    .action(
      async (
        arg: string,
        opts: {
          target?: string;
          out: string;
          redis?: string;
          allowNonLoopback: boolean;
          expectRollback: boolean;
          demo: boolean;
          progress: boolean;
        },
      ) => {
        if (opts.target !== undefined && opts.target.trim() === '') throw new InvalidArgumentError('--target must not be empty');
        const profile = withDemo(loadProfile(resolveProfile(arg)), opts.demo);
        if (profile.demo === undefined) checkTarget(opts.target ?? profile.target, opts.allowNonLoopback); // refuse before printing anything
        const tty = opts.progress && process.stderr.isTTY === true;
        const clear = (): void => {
          if (tty) process.stderr.write('\r\x1b[2K');
        };
        // Loaded here, not at the top: `canary-gate run` registers this command, and a sidecar should not carry
        // autocannon, the report and the demo fleet in its memory.
        const [{ runProfile }, { writeReports }] = await Promise.all([import('./run.ts'), import('./report.ts')]);
        const abort = new AbortController();
        const onSigint = (): void => {
          if (abort.signal.aborted) process.exit(130);
          abort.abort();
        };
        process.on('SIGINT', onSigint);
        process.stdout.write(
          `load profile ${profile.name}: ${profile.steps.length} step(s), ${profile.durationMs / 1000} s at most, ${profile.maxRequests} requests at most\n`,
        );
        try {
          const result = await runProfile(profile, {
            target: opts.target,
            allowNonLoopback: opts.allowNonLoopback,
            redisUrl: opts.redis,
            env: process.env,
            signal: abort.signal,
            onEvent: (e: RunEvent) => {
              clear();
              process.stdout.write(`[${e.tS.toFixed(1).padStart(6)} s] ${e.text}\n`);
            },
            onPoint: (point, progress) => {
              if (tty)
                process.stderr.write(
                  `\r\x1b[2K${progressLine(point, progress, Math.max(10, Math.min(30, (process.stderr.columns ?? 80) - 70)))}`,
                );
            },
          });
          clear();
          process.stdout.write(`\n${summaryTable(result)}`);
          const paths = await writeReports(result, opts.out);
          process.stdout.write(`\nwrote ${paths.json}\nwrote ${paths.html}\n`);
          if (opts.expectRollback && result.rollback === null) process.exitCode = 1;
        } finally {
          process.off('SIGINT', onSigint);
        }
      },
    );
}
