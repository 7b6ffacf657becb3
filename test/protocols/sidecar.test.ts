/**
 * A whole sidecar (canary v2, HTTP/1.1 port) in front of an app that serves a WebSocket echo and Server-Sent Events:
 * both pass, and the pod's slot records each once under its version (the session as its handshake), none an error.
 * gRPC through a sidecar is in grpc.test.ts.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { uniqueService } from '../helpers/redis.ts';
import { cleanups, configFor, startPod, TOKEN } from '../helpers/sidecar-fleet.ts';
import { waitFor } from '../helpers/proxy-config.ts';
import { echoOnce, startWsEchoApp } from './ws-echo.ts';

describe('protocols through a sidecar', () => {
  it("records a WebSocket session and an SSE stream once each in the pod's version slot", async () => {
    const app = await startWsEchoApp((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      setTimeout(() => res.end('data: two\n\n'), 50);
    });
    cleanups.push(() => app.close());
    const pod = await startPod(configFor(uniqueService('proto'), 'proto-canary-0', 'v2', app.url));

    const socket = new WebSocket(`${pod.proxy.replace('http://', 'ws://')}/chat`);
    expect(await echoOnce(socket, 'ping')).toBe('ping');

    const events = await request(`${pod.proxy}/events`);
    expect(await events.body.text()).toBe('data: one\n\ndata: two\n\n');

    const status = async () => {
      const res = await request(`${pod.admin}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return (await res.body.json()) as { version: string; local: { requests: number; errors: number } };
    };
    // The session is still open: it was recorded at its handshake.
    await waitFor(async () => (await status()).local.requests === 2, 'two requests in the slot');
    const s = await status();
    expect([s.version, s.local.requests, s.local.errors]).toEqual(['v2', 2, 0]);
    socket.close();
  });
});
