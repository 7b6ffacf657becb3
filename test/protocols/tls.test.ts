/**
 * The TLS port (`proxy.tls.certFile`, `proxy.tls.keyFile`): one HTTPS port that negotiates h2 or http/1.1 by ALPN.
 * A self-signed certificate is made with openssl for each run. Clients of each kind reach the app through it: Node's
 * http2 client (ALPN h2), Node's https client (ALPN http/1.1) and a @grpc/grpc-js client with TLS credentials; each
 * request is recorded once with its outcome, and the app sees X-Forwarded-Proto `https`. A whole sidecar records
 * both protocols under its pod's version. Bad files fail the config (exit code 2 from check-config), naming the field.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Agent, request, WebSocket } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { createProxyServer, type ProxiedRequest } from '../../src/proxy/proxy-server.ts';
import { configProblems, makeCertificate } from '../helpers/certificate.ts';
import { silent, uniqueService } from '../helpers/redis.ts';
import { configFor, startPod, TOKEN } from '../helpers/sidecar-fleet.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';
import { echoOnce, startWsEchoApp } from './ws-echo.ts';

const dir = mkdtempSync(join(tmpdir(), 'cg-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cert = makeCertificate(dir, 'proxy');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

/** The app (HTTP/1.1): answers `proto=<X-Forwarded-Proto it saw>`, with 500 on /fail; /slow sends `first `, then `last` 600 ms later. */
async function startApp(): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(req.url === '/fail' ? 500 : 200, { 'content-type': 'text/plain' });
    if (req.url === '/slow') {
      res.write('first ');
      setTimeout(() => res.end('last'), 600);
      return;
    }
    res.end(`proto=${req.headers['x-forwarded-proto']}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function startTlsProxy(appUrl: string, overrides: Partial<Config['proxy']> = {}, sessionIdleMs?: number) {
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(appUrl, {
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, clientCaFile: '', reloadInterval: 0 },
      ...overrides,
    }),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
    sessionIdleMs,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { proxy, records, port };
}

/** One GET over HTTP/2 (ALPN h2): the status, the body and the protocol ALPN chose. */
async function getH2(port: number, path: string): Promise<{ status: number; body: string; alpn: string | false | undefined }> {
  const session = connect(`https://127.0.0.1:${port}`, { ca: cert.ca, servername: 'localhost' });
  cleanups.push(() => session.destroy());
  await new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject));
  const alpn = session.alpnProtocol;
  const stream = session.request({ ':path': path });
  const [status, body] = await Promise.all([
    new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status'])))),
    new Promise<string>((resolve, reject) => {
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        text += chunk;
      });
      stream.once('end', () => resolve(text));
      stream.once('error', reject);
    }),
  ]);
  session.close();
  return { status, body, alpn };
}

/** One GET over HTTP/1.1 (the https client offers ALPN http/1.1 only). */
function getHttp1(port: number, path: string): Promise<{ status: number; body: string; alpn: string | false | undefined }> {
  return new Promise((resolve, reject) => {
    // Passed on to tls.connect; the https types do not list it.
    const options: RequestOptions & ConnectionOptions = {
      host: '127.0.0.1',
      port,
      path,
      ca: cert.ca,
      servername: 'localhost',
      agent: false,
      ALPNProtocols: ['http/1.1'],
    };
    const req = httpsRequest(options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.once('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text,
          alpn: (res.socket as unknown as { alpnProtocol?: string | false }).alpnProtocol,
        }),
      );
    });
    req.once('error', reject);
    req.end();
  });
}

interface Note {
  text: string;
  count: number;
}
type EchoClient = grpc.Client & { say(note: Note, callback: (err: grpc.ServiceError | null, reply?: Note) => void): grpc.ClientUnaryCall };
const definition = protoLoader.loadSync(fileURLToPath(new URL('./echo.proto', import.meta.url)), { defaults: true });
const Echo = (grpc.loadPackageDefinition(definition) as unknown as { canarygate: { test: { Echo: grpc.ServiceClientConstructor } } })
  .canarygate.test.Echo;

/** A gRPC app (h2c) whose Say answers `<text> via <X-Forwarded-Proto it saw>`, INTERNAL for `internal`. */
async function startGrpcApp(): Promise<string> {
  const server = new grpc.Server();
  server.addService(Echo.service, {
    say(call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) {
      if (call.request.text === 'internal') return callback({ code: grpc.status.INTERNAL, details: 'broken on purpose' });
      callback(null, { text: `${call.request.text} via ${call.metadata.get('x-forwarded-proto').join(',')}`, count: 1 });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return `http://127.0.0.1:${port}`;
}

const say = (client: EchoClient, text: string): Promise<{ code: number; reply?: Note }> =>
  new Promise((resolve) => {
    client.say({ text, count: 0 }, (err, reply) => resolve(err ? { code: err.code } : { code: grpc.status.OK, reply }));
  });

const summary = (r: ProxiedRequest) => ({ target: r.target, status: r.status, outcome: r.outcome, isError: r.isError });

describe('the TLS port', () => {
  it('serves HTTP/2 (ALPN h2) and HTTP/1.1 (ALPN http/1.1) on one port, X-Forwarded-Proto https, each recorded once', async () => {
    const { records, port } = await startTlsProxy(await startApp());

    const h2 = await getH2(port, '/hello');
    expect(h2).toEqual({ status: 200, body: 'proto=https', alpn: 'h2' });
    const h2Fail = await getH2(port, '/fail');
    expect([h2Fail.status, h2Fail.alpn]).toEqual([500, 'h2']);
    const h1 = await getHttp1(port, '/hello');
    expect(h1).toEqual({ status: 200, body: 'proto=https', alpn: 'http/1.1' });
    const h1Fail = await getHttp1(port, '/fail');
    expect([h1Fail.status, h1Fail.alpn]).toEqual([500, 'http/1.1']);

    await waitFor(() => records.length === 4, 'four records');
    expect(records.map(summary)).toEqual([
      { target: '/hello', status: 200, outcome: 'ok', isError: false },
      { target: '/fail', status: 500, outcome: 'status_error', isError: true },
      { target: '/hello', status: 200, outcome: 'ok', isError: false },
      { target: '/fail', status: 500, outcome: 'status_error', isError: true },
    ]);
    for (const r of records) expect(r.appLatencyUs).toBeGreaterThan(0);
  });

  it('keeps the X-Forwarded-Proto of a trusted proxy and replaces anyone else’s', async () => {
    const app = await startApp();
    const untrusted = await startTlsProxy(app);
    const h1 = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: untrusted.port,
          path: '/',
          ca: cert.ca,
          servername: 'localhost',
          agent: false,
          headers: { 'x-forwarded-proto': 'http' },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.once('end', () => resolve(text));
        },
      );
      req.once('error', reject);
      req.end();
    });
    expect(h1).toBe('proto=https');
    const trusted = await startTlsProxy(app, { trustedProxies: ['127.0.0.1'] });
    const session = connect(`https://127.0.0.1:${trusted.port}`, { ca: cert.ca, servername: 'localhost' });
    cleanups.push(() => session.destroy());
    const stream = session.request({ ':path': '/', 'x-forwarded-proto': 'wss' });
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => {
      text += c;
    });
    await new Promise((resolve) => stream.once('end', resolve));
    expect(text).toBe('proto=wss');
  });

  it('carries gRPC calls from a client with TLS credentials to an h2c app, outcomes from grpc-status', async () => {
    const { records, port } = await startTlsProxy(await startGrpcApp(), { upstreamProtocol: 'h2c' });
    const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createSsl(cert.ca)) as unknown as EchoClient;
    cleanups.push(() => client.close());

    expect(await say(client, 'hello')).toEqual({ code: grpc.status.OK, reply: { text: 'hello via https', count: 1 } });
    expect((await say(client, 'internal')).code).toBe(grpc.status.INTERNAL);

    await waitFor(() => records.length === 2, 'two records');
    expect(records.map((r) => ({ ...summary(r), grpcStatus: r.grpcStatus }))).toEqual([
      { target: '/canarygate.test.Echo/Say', status: 200, outcome: 'ok', isError: false, grpcStatus: 0 },
      { target: '/canarygate.test.Echo/Say', status: 200, outcome: 'status_error', isError: true, grpcStatus: 13 },
    ]);
  });

  it('closes an HTTP/1.1 connection idle past sessionIdleMs, but not one whose response is only quiet', async () => {
    const { records, port } = await startTlsProxy(await startApp(), {}, 200);
    // A raw TLS client that never closes by itself (an https Agent would follow the Keep-Alive hint and close first).
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    cleanups.push(() => socket.destroy());
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.alpnProtocol).toBe('http/1.1');
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n');
    // Quiet for 600 ms, three times the idle time, in the middle of its response: not cut.
    await waitFor(() => received.includes('last') || socket.destroyed, 'the end of the response');
    expect(received).toMatch(/^HTTP\/1\.1 200 [\s\S]*first [\s\S]*last/);
    // Then idle on keep-alive: closed by the proxy (after Node's keep-alive time plus its one-second grace).
    await closed;
    expect(records.map((r) => r.outcome)).toEqual(['ok']);
  });

  it('closes an HTTP/2 session idle past sessionIdleMs, as on the h2c port', async () => {
    const { port } = await startTlsProxy(await startApp(), {}, 200);
    const session = connect(`https://127.0.0.1:${port}`, { ca: cert.ca, servername: 'localhost' });
    cleanups.push(() => session.destroy());
    const closed = new Promise((resolve) => session.once('close', resolve));
    const stream = session.request({ ':path': '/hello' });
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    // The client keeps the session; the proxy sends GOAWAY once it has had no stream for 200 ms.
    await closed;
    expect(session.alpnProtocol).toBe('h2');
  });

  it('drains: a request in flight on each protocol finishes, then the port closes', async () => {
    const { proxy, records, port } = await startTlsProxy(await startApp());
    const h2 = getH2(port, '/slow');
    const h1 = getHttp1(port, '/slow');
    await waitFor(() => proxy.stats.inFlight === 2, 'two requests in flight');
    await proxy.close(5000);
    expect(await h2).toEqual({ status: 200, body: 'first last', alpn: 'h2' });
    expect(await h1).toEqual({ status: 200, body: 'first last', alpn: 'http/1.1' });
    expect(records.map((r) => r.outcome)).toEqual(['ok', 'ok']);
    await expect(getHttp1(port, '/hello')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('answers 408 to a client slower than clientHeadersTimeout with its HTTP/1.1 head, as the cleartext port does', async () => {
    const { proxy, records, port } = await startTlsProxy(await startApp(), { clientHeadersTimeout: 500 });
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    cleanups.push(() => socket.destroy());
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    socket.write('GET /hello HTTP/1.1\r\nhost: localhost\r\n'); // the head never ends
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(proxy.stats.rejected).toEqual({ timeout: 1 });
    expect(records).toEqual([]);
  });

  it('tunnels a WebSocket (wss) over an HTTP/1.1 TLS connection, recorded once as its handshake', async () => {
    const app = await startWsEchoApp();
    cleanups.push(() => app.close());
    const { records, port } = await startTlsProxy(app.url);
    const dispatcher = new Agent({ connect: { ca: cert.ca, servername: 'localhost' } });
    cleanups.push(() => dispatcher.close());
    // undici's WebSocket (Node's global one, from its own undici) takes the dispatcher that trusts the test's certificate.
    const socket = new WebSocket(`wss://127.0.0.1:${port}/chat`, { dispatcher });
    cleanups.push(() => socket.close());
    expect(await echoOnce(socket, 'ping')).toBe('ping');
    expect(app.handshakes.map((h) => h.headers['x-forwarded-proto'])).toEqual(['https']);
    await waitFor(() => records.length === 1, 'the handshake recorded');
    expect([records[0]!.status, records[0]!.outcome, records[0]!.upgrade]).toEqual([101, 'ok', true]);
  });

  it('refuses plain HTTP on the TLS port', async () => {
    const { records, port } = await startTlsProxy(await startApp());
    await expect(request(`http://127.0.0.1:${port}/hello`, { headersTimeout: 5000 })).rejects.toThrow();
    expect(records).toEqual([]);
  });
});

describe('the TLS port in a sidecar', () => {
  it("records requests over h2 and HTTP/1.1 in the pod's version slot", async () => {
    const pod = await startPod(
      configFor(uniqueService('tls'), 'tls-canary-0', 'v2', await startApp(), {
        CANARY_GATE_PROXY_TLS_CERT_FILE: cert.certFile,
        CANARY_GATE_PROXY_TLS_KEY_FILE: cert.keyFile,
      }),
    );
    const port = Number(new URL(pod.proxy).port);
    const answers = [await getH2(port, '/a'), await getH2(port, '/fail'), await getHttp1(port, '/b'), await getHttp1(port, '/fail')];
    expect(answers.map((a) => [a.status, a.alpn])).toEqual([
      [200, 'h2'],
      [500, 'h2'],
      [200, 'http/1.1'],
      [500, 'http/1.1'],
    ]);
    const status = async () => {
      const res = await request(`${pod.admin}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return (await res.body.json()) as { version: string; local: { requests: number; errors: number } };
    };
    await waitFor(async () => (await status()).local.requests === 4, 'four requests in the slot');
    const s = await status();
    expect([s.version, s.local.requests, s.local.errors]).toEqual(['v2', 4, 2]);
    // The certificate's expiry and its reloads are exported (none yet: the files did not change).
    const metrics = await (await request(`${pod.admin}/metrics`)).body.text();
    const notAfterS = Date.parse(new X509Certificate(cert.ca).validTo) / 1000;
    expect(metrics).toMatch(new RegExp(`^canary_gate_proxy_tls_certificate_expiry_timestamp_seconds ${notAfterS}$`, 'm'));
    expect(metrics).toMatch(/^canary_gate_proxy_tls_reloads_total\{result="reloaded"\} 0$/m);
    expect(metrics).toMatch(/^canary_gate_proxy_tls_reloads_total\{result="failed"\} 0$/m);
  });
});

describe('TLS config', () => {
  const problemsOf = configProblems;
  const other = makeCertificate(dir, 'other');
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'not a certificate\n');
  const chainCutShort = join(dir, 'cut.crt');
  writeFileSync(chainCutShort, Buffer.concat([cert.ca, other.ca.subarray(0, 200)]));
  const files = (certFile: string, keyFile: string) => ({
    CANARY_GATE_PROXY_TLS_CERT_FILE: certFile,
    CANARY_GATE_PROXY_TLS_KEY_FILE: keyFile,
  });

  it('loads a matching certificate and key', () => {
    expect(problemsOf(files(cert.certFile, cert.keyFile))).toEqual([]);
  });

  it.each([
    [
      'a missing certificate file',
      files(join(dir, 'missing.crt'), cert.keyFile),
      /^proxy\.tls\.certFile: cannot read .*missing\.crt: ENOENT/,
    ],
    ['a missing key file', files(cert.certFile, join(dir, 'missing.key')), /^proxy\.tls\.keyFile: cannot read .*missing\.key: ENOENT/],
    ['a certificate file without PEM', files(notPem, cert.keyFile), /^proxy\.tls\.certFile: .*not\.pem holds no PEM certificate/],
    ['a key file without PEM', files(cert.certFile, notPem), /^proxy\.tls\.keyFile: .*not\.pem holds no unencrypted PEM private key/],
    [
      'the key of another certificate',
      files(cert.certFile, other.keyFile),
      /^proxy\.tls\.keyFile: .* is not the private key of the certificate/,
    ],
    [
      'a certificate without its key',
      { CANARY_GATE_PROXY_TLS_CERT_FILE: cert.certFile },
      /^proxy\.tls\.keyFile: must name the private key file of the certificate in proxy\.tls\.certFile \(.*proxy\.crt\)/,
    ],
    [
      'a key without its certificate',
      { CANARY_GATE_PROXY_TLS_KEY_FILE: cert.keyFile },
      /^proxy\.tls\.certFile: must name the certificate file of the key in proxy\.tls\.keyFile \(.*proxy\.key\)/,
    ],
    [
      'a certificate chain cut short after its leaf',
      files(chainCutShort, cert.keyFile),
      /^proxy\.tls\.certFile: .*cut\.crt does not load as a certificate chain/,
    ],
    [
      'a reload interval that is no duration',
      { ...files(cert.certFile, cert.keyFile), CANARY_GATE_PROXY_TLS_RELOAD_INTERVAL: 'soon' },
      /^proxy\.tls\.reloadInterval: must be a positive duration/,
    ],
    [
      'h2c with TLS',
      { ...files(cert.certFile, cert.keyFile), CANARY_GATE_PROXY_PROTOCOL: 'h2c' },
      /^proxy\.protocol: must be http1 when proxy\.tls is set/,
    ],
  ])('names the field for %s', (_case, env, expected) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('makes check-config exit 2 naming the field', () => {
    const main = join(import.meta.dirname, '../../src/cli/main.ts');
    const config = join(dir, 'tls.yaml');
    writeFileSync(config, `proxy:\n  tls:\n    certFile: ${join(dir, 'missing.crt')}\n`);
    const r = spawnSync(process.execPath, [main, 'check-config', config], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', CANARY_GATE_PROXY_TLS_KEY_FILE: cert.keyFile },
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/proxy\.tls\.certFile: cannot read .*missing\.crt: ENOENT/);
  });
});
