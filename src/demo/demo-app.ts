/**
 * A demo API: answers every request after a lognormal delay, with a configurable share of 500s. `regress()` turns it
 * slow and error-prone on cue (the demo's bad canary). Latency figures are ms; ratios 0..1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import lognormal from '@stdlib/random-base-lognormal';
import randu from '@stdlib/random-base-randu';

export interface DemoBehaviour {
  /** Median latency, ms. */
  readonly medianMs: number;
  /** Lognormal shape (sigma of the underlying normal); 0.5 puts p95 at about 2.3 x the median. */
  readonly sigma: number;
  /** Share of requests answered 500, 0..1. */
  readonly errorRatio: number;
}

export interface DemoApp {
  listen(port?: number, host?: string): Promise<number>;
  /** Changes the behaviour from now on (e.g. a regression). */
  regress(behaviour: DemoBehaviour): void;
  close(): Promise<void>;
}

/** Listens on `host:port` (a free port by default); resolves to the port. */
export function listen(server: Server, port = 0, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(port, host, () => resolve((server.address() as AddressInfo).port)));
}

/** Closes a server and its idle and in-flight connections. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export const HEALTHY: DemoBehaviour = { medianMs: 20, sigma: 0.5, errorRatio: 0.001 };
/** The demo's regression: p95 about 2.5 x and 10 % errors. */
export const REGRESSED: DemoBehaviour = { medianMs: 50, sigma: 0.5, errorRatio: 0.1 };

export function createDemoApp(version: string, behaviour: DemoBehaviour = HEALTHY, seed = 1): DemoApp {
  let current = behaviour;
  let delay = lognormal.factory(Math.log(current.medianMs), current.sigma, { seed });
  const uniform = randu.factory({ seed: seed + 1 });
  const server = createServer((req, res) => {
    req.resume();
    const fail = uniform() < current.errorRatio;
    setTimeout(() => {
      const status = fail ? 500 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version, ok: !fail }));
    }, delay());
  });
  server.keepAliveTimeout = 10_000;
  return {
    listen: (port, host) => listen(server, port, host),
    regress(next) {
      current = next;
      delay = lognormal.factory(Math.log(next.medianMs), next.sigma, { seed: seed + 2 });
    },
    close: () => closeServer(server),
  };
}
