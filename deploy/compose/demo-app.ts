/**
 * One demo app of the compose stack: the demo's own app (src/demo/demo-app.ts), healthy, on a port of its container.
 * It regresses (the demo's bad canary: median 50 ms, 10 % errors) after REGRESS_AFTER_S seconds, or on SIGUSR2
 * (`docker compose kill -s SIGUSR2 app-v2`). Prints one line when listening and one when it regresses.
 *
 * Environment: VERSION (v1), PORT (3000), HOST (0.0.0.0), SEED (1), REGRESS_AFTER_S (seconds, 0 = never; default 0).
 * Run with Node 24 from the repository root or /app in the image: node deploy/compose/demo-app.ts
 */
import { createDemoApp, HEALTHY, REGRESSED } from '../../src/demo/demo-app.ts';

const env = process.env;
const version = env.VERSION ?? 'v1';
const port = Number(env.PORT ?? 3000);
const regressAfterS = Number(env.REGRESS_AFTER_S ?? 0);
const app = createDemoApp(version, HEALTHY, Number(env.SEED ?? 1));

let regressed = false;
const regress = (why: string): void => {
  if (regressed) return;
  regressed = true;
  app.regress(REGRESSED);
  process.stdout.write(`demo app ${version} regresses (${why}): median ${REGRESSED.medianMs} ms, ${REGRESSED.errorRatio * 100} % errors\n`);
};
process.on('SIGUSR2', () => regress('SIGUSR2'));
if (Number.isFinite(regressAfterS) && regressAfterS > 0) setTimeout(() => regress(`after ${regressAfterS} s`), regressAfterS * 1000).unref();

// PID 1 in a container gets no default signal handling: close on SIGTERM and SIGINT ourselves.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void app.close().then(() => process.exit(0)));

const listening = await app.listen(port, env.HOST ?? '0.0.0.0');
process.stdout.write(`demo app ${version} listening on ${env.HOST ?? '0.0.0.0'}:${listening}\n`);
