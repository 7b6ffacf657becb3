/**
 * A real HTTP receiver of notifications on loopback: records every request (path, headers, JSON body) and answers
 * as told: `ok` (200 or the given status), `fail` (500), or `hang` (reads the request and never answers).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { startUpstream, type Upstream } from './upstream.ts';

export interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The JSON document (or the text, when not JSON), for the test to inspect. */
  readonly body: any;
}

export type Behaviour = 'ok' | 'fail' | 'hang' | number;

export interface Receiver {
  readonly url: string;
  /** Every request, in arrival order, whatever the answer. */
  readonly received: Received[];
  /** Requests being held open by `hang`. */
  hanging(): number;
  /** How to answer from now on (requests already hanging stay so). */
  behave(b: Behaviour): void;
  close(): Promise<void>;
}

export async function startReceiver(behaviour: Behaviour = 'ok'): Promise<Receiver> {
  let current = behaviour;
  let hanging = 0;
  const received: Received[] = [];
  const upstream: Upstream = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: kept as text
      }
      received.push({ path: req.url ?? '', headers: req.headers, body });
      if (current === 'hang') {
        hanging++;
        res.on('close', () => hanging--);
        return;
      }
      const status = current === 'ok' ? 200 : current === 'fail' ? 500 : current;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status < 300 ? 'ok' : 'no');
    });
  });
  return {
    url: upstream.url,
    received,
    hanging: () => hanging,
    behave: (b) => {
      current = b;
    },
    close: () => upstream.close(),
  };
}
