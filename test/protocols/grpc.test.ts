/**
 * gRPC through the proxy: a real @grpc/grpc-js server and client, the proxy between them speaking h2c (HTTP/2 with
 * prior knowledge) on both sides. Unary, server-streaming and bidirectional calls pass; each call is recorded once,
 * its outcome taken from `grpc-status` (the HTTP status is 200 for every gRPC outcome) and the configured error codes;
 * a whole sidecar records them under its pod's version.
 */
import { connect as http2Connect } from 'node:http2';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest } from '../../src/proxy/proxy-server.ts';
import { silent, uniqueService } from '../helpers/redis.ts';
import { configFor, startPod, TOKEN } from '../helpers/sidecar-fleet.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';

interface Note {
  text: string;
  count: number;
}
type EchoClient = grpc.Client & {
  say(note: Note, callback: (err: grpc.ServiceError | null, reply?: Note) => void): grpc.ClientUnaryCall;
  repeat(note: Note): grpc.ClientReadableStream<Note>;
  chat(): grpc.ClientDuplexStream<Note, Note>;
};

const definition = protoLoader.loadSync(fileURLToPath(new URL('./echo.proto', import.meta.url)), { defaults: true });
const echoPackage = grpc.loadPackageDefinition(definition) as unknown as {
  canarygate: { test: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = echoPackage.canarygate.test.Echo;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

/** The app: a gRPC server on a free loopback port; `stop()` shuts it down at once. */
async function startGrpcApp(): Promise<{ url: string; stop: () => void }> {
  const server = new grpc.Server();
  server.addService(Echo.service, {
    say(call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) {
      const { text } = call.request;
      if (text === 'internal') return callback({ code: grpc.status.INTERNAL, details: 'broken on purpose' });
      if (text === 'missing') return callback({ code: grpc.status.NOT_FOUND, details: 'no such note' });
      if (text === 'unavailable') return callback({ code: grpc.status.UNAVAILABLE, details: 'down on purpose' });
      callback(null, { text: `echo ${text}`, count: 1 });
    },
    repeat(call: grpc.ServerWritableStream<Note, Note>) {
      const { text, count } = call.request;
      for (let i = 0; i < count; i++) call.write({ text: `${text} ${i}`, count: i });
      // grpc-js ends the call with the error's status once the messages written before it are sent.
      if (text === 'internal') call.emit('error', { code: grpc.status.INTERNAL, details: 'broken mid-stream' });
      else call.end();
    },
    chat(call: grpc.ServerDuplexStream<Note, Note>) {
      call.on('data', (note: Note) => call.write({ text: `echo ${note.text}`, count: note.count }));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return { url: `http://127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

function clientFor(address: string): EchoClient {
  const client = new Echo(address, grpc.credentials.createInsecure()) as unknown as EchoClient;
  cleanups.push(() => client.close());
  return client;
}

async function startProxy(appUrl: string, overrides: Partial<Config['proxy']> = {}) {
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(appUrl, { protocol: 'h2c', upstreamProtocol: 'h2c', ...overrides }),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { proxy, records, address: `127.0.0.1:${port}` };
}

const say = (client: EchoClient, text: string): Promise<{ code: number; reply?: Note }> =>
  new Promise((resolve) => {
    client.say({ text, count: 0 }, (err, reply) => resolve(err ? { code: err.code } : { code: grpc.status.OK, reply }));
  });

function readAll(call: grpc.ClientReadableStream<Note> | grpc.ClientDuplexStream<Note, Note>): Promise<{ notes: Note[]; code: number }> {
  return new Promise((resolve) => {
    const notes: Note[] = [];
    let code: number = grpc.status.OK;
    call.on('data', (n: Note) => notes.push(n));
    call.on('error', (err: grpc.ServiceError) => {
      code = err.code;
    });
    call.on('close', () => resolve({ notes, code }));
  });
}

/** What the record says, in one line per call, for table comparisons. */
const summary = (r: ProxiedRequest) => ({
  target: r.target,
  status: r.status,
  grpcStatus: r.grpcStatus,
  outcome: r.outcome,
  isError: r.isError,
});

describe('gRPC through an h2c proxy', () => {
  it('passes unary calls and records each by its grpc-status: INTERNAL is an error of the version, NOT_FOUND is not', async () => {
    const app = await startGrpcApp();
    const { records, address } = await startProxy(app.url);
    const client = clientFor(address);

    const ok = await say(client, 'hello');
    expect(ok).toEqual({ code: grpc.status.OK, reply: { text: 'echo hello', count: 1 } });
    expect((await say(client, 'internal')).code).toBe(grpc.status.INTERNAL);
    expect((await say(client, 'missing')).code).toBe(grpc.status.NOT_FOUND);

    await waitFor(() => records.length === 3, 'three records');
    const path = '/canarygate.test.Echo/Say';
    expect(records.map(summary)).toEqual([
      { target: path, status: 200, grpcStatus: 0, outcome: 'ok', isError: false },
      { target: path, status: 200, grpcStatus: 13, outcome: 'status_error', isError: true },
      { target: path, status: 200, grpcStatus: 5, outcome: 'ok', isError: false },
    ]);
    for (const r of records) expect(r.appLatencyUs).toBeGreaterThan(0);
  });

  it('takes the error codes from proxy.grpcErrorCodes', async () => {
    const app = await startGrpcApp();
    const { records, address } = await startProxy(app.url, { grpcErrorCodes: [5] });
    const client = clientFor(address);
    await say(client, 'internal');
    await say(client, 'missing');
    await waitFor(() => records.length === 2, 'two records');
    expect(records.map((r) => [r.grpcStatus, r.outcome])).toEqual([
      [13, 'ok'],
      [5, 'status_error'],
    ]);
  });

  it('streams server-streaming and bidirectional calls message by message, with the status of the trailers', async () => {
    const app = await startGrpcApp();
    const { records, address } = await startProxy(app.url);
    const client = clientFor(address);

    const repeated = await readAll(client.repeat({ text: 'tick', count: 50 }));
    expect(repeated.code).toBe(grpc.status.OK);
    expect(repeated.notes.map((n) => n.text)).toEqual(Array.from({ length: 50 }, (_, i) => `tick ${i}`));

    const broken = await readAll(client.repeat({ text: 'internal', count: 3 }));
    expect(broken.notes).toHaveLength(3);
    expect(broken.code).toBe(grpc.status.INTERNAL);

    // Bidirectional: each answer arrives before the next note is sent, so the call is a conversation, not a batch.
    const chat = client.chat();
    const heard: string[] = [];
    for (const text of ['a', 'b', 'c']) {
      const answer = new Promise<Note>((resolve) => chat.once('data', resolve));
      chat.write({ text, count: 0 });
      heard.push((await answer).text);
    }
    const closed = readAll(chat);
    chat.end();
    expect((await closed).code).toBe(grpc.status.OK);
    expect(heard).toEqual(['echo a', 'echo b', 'echo c']);

    await waitFor(() => records.length === 3, 'three records');
    expect(records.map(summary)).toEqual([
      { target: '/canarygate.test.Echo/Repeat', status: 200, grpcStatus: 0, outcome: 'ok', isError: false },
      { target: '/canarygate.test.Echo/Repeat', status: 200, grpcStatus: 13, outcome: 'status_error', isError: true },
      { target: '/canarygate.test.Echo/Chat', status: 200, grpcStatus: 0, outcome: 'ok', isError: false },
    ]);
  });

  it('answers UNAVAILABLE when the app is down, recorded as a connect error of the version', async () => {
    const app = await startGrpcApp();
    app.stop(); // its port refuses from now on
    const { records, address } = await startProxy(app.url);
    const client = clientFor(address);
    expect((await say(client, 'hello')).code).toBe(grpc.status.UNAVAILABLE);
    await waitFor(() => records.length === 1, 'one record');
    expect([records[0]!.status, records[0]!.outcome, records[0]!.isError]).toEqual([502, 'connect_error', true]);
  });
});

describe('gRPC through a sidecar', () => {
  it("records every call in the pod's version slot, errors by grpc-status", async () => {
    const app = await startGrpcApp();
    const service = uniqueService('grpc');
    const pod = await startPod(
      configFor(service, 'grpc-canary-0', 'v2', app.url, { CANARY_GATE_PROXY_PROTOCOL: 'h2c', CANARY_GATE_PROXY_UPSTREAM_PROTOCOL: 'h2c' }),
    );
    const client = clientFor(pod.proxy.replace('http://', ''));
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) codes.push((await say(client, i < 3 ? 'internal' : 'hello')).code);
    expect(codes).toEqual([13, 13, 13, 0, 0, 0, 0, 0, 0, 0]);
    const status = async () => {
      const res = await request(`${pod.admin}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return (await res.body.json()) as { version: string; local: { requests: number; errors: number } };
    };
    await waitFor(async () => (await status()).local.requests === 10, 'ten requests in the slot');
    const s = await status();
    expect([s.version, s.local.requests, s.local.errors]).toEqual(['v2', 10, 3]);
  });

  it('exports each call in http.server.request.duration with rpc.grpc.status_code and rpc.status_code', async () => {
    const app = await startGrpcApp();
    const pod = await startPod(
      configFor(uniqueService('grpc-metrics'), 'grpc-canary-0', 'v2', app.url, {
        CANARY_GATE_PROXY_PROTOCOL: 'h2c',
        CANARY_GATE_PROXY_UPSTREAM_PROTOCOL: 'h2c',
      }),
    );
    const client = clientFor(pod.proxy.replace('http://', ''));
    expect([await say(client, 'missing'), await say(client, 'unavailable'), await say(client, 'unavailable')].map((r) => r.code)).toEqual([
      grpc.status.NOT_FOUND,
      grpc.status.UNAVAILABLE,
      grpc.status.UNAVAILABLE,
    ]);
    // Plain HTTP/2 to the same port (the gRPC server refuses it, not as gRPC): neither attribute.
    const session = http2Connect(pod.proxy);
    const plain = session.request({ ':path': '/plain' });
    plain.resume();
    const plainStatus = await new Promise<number>((resolve) => plain.once('response', (h) => resolve(Number(h[':status']))));
    await new Promise((resolve) => plain.once('close', resolve));
    session.close();
    expect(plainStatus).toBe(415);
    const counts = async (): Promise<Map<string, number>> => {
      const text = await (await request(`${pod.admin}/metrics`)).body.text();
      const found = new Map<string, number>();
      for (const line of text.split('\n')) {
        const m = /^http_server_request_duration_count\{(.*)\} (\d+)/.exec(line);
        if (m === null) continue;
        const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
        found.set(`${labels.rpc_grpc_status_code ?? '-'} ${labels.rpc_status_code ?? '-'} ${labels.service_version}`, Number(m[2]));
      }
      return found;
    };
    await waitFor(async () => (await counts()).size === 3, 'three series');
    expect(Object.fromEntries(await counts())).toEqual({ '5 NOT_FOUND v2': 1, '14 UNAVAILABLE v2': 2, '- - v2': 1 });
  });
});
