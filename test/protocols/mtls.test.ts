/**
 * Mutual TLS on the TLS port (`proxy.tls.clientCaFile`): a client must show a certificate the configured CAs signed,
 * or its handshake is refused and nothing reaches the app; a rotated CA file is taken up like a renewed certificate.
 * Certificates (a server's, two CAs, a client of each) are made with openssl for each run.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxiedRequest } from '../../src/proxy/proxy-server.ts';
import { configProblems, makeCertificate, makeClientCertificate } from '../helpers/certificate.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';
import { silent } from '../helpers/redis.ts';

const dir = mkdtempSync(join(tmpdir(), 'cg-mtls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const server = makeCertificate(dir, 'server');
const clientCa = makeCertificate(dir, 'client-ca');
const otherCa = makeCertificate(dir, 'other-ca');
const alice = makeClientCertificate(dir, 'alice', clientCa);
const mallory = makeClientCertificate(dir, 'mallory', otherCa);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

async function startProxy(): Promise<{ port: number; records: ProxiedRequest[]; caFile: string; stats: () => { reloaded: number } }> {
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => app.close(resolve)));
  const caFile = join(dir, 'trusted-ca.crt');
  copyFileSync(clientCa.certFile, caFile);
  const records: ProxiedRequest[] = [];
  const proxy = createProxyServer({
    config: loopbackProxyConfig(`http://127.0.0.1:${(app.address() as { port: number }).port}`, {
      tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: caFile, reloadInterval: 50 },
    }),
    recorder: { record: (r) => void records.push(r) },
    logger: silent,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { port, records, caFile, stats: () => proxy.stats.tls! };
}

/** One HTTP/1.1 GET over a new TLS connection showing `client`'s certificate (none: undefined): the body, or `refused`. */
async function get(port: number, client?: { cert: Buffer; key: Buffer }): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: server.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], ...client });
  cleanups.push(() => socket.destroy());
  return await new Promise<string>((resolve) => {
    let text = '';
    socket.setEncoding('utf8');
    // TLS 1.3 finishes the client's side of the handshake before the server has checked its certificate: the refusal
    // arrives as an alert on the first read, so the request is sent either way.
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n'));
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.once('error', () => resolve('refused'));
    socket.once('close', () => resolve(text.includes('\r\n\r\n') ? text.slice(text.indexOf('\r\n\r\n') + 4) : 'refused'));
  });
}

describe('mutual TLS on the TLS port', () => {
  it('serves a client whose certificate the CA signed, refuses one without a certificate or with a stranger’s, and takes up a rotated CA', async () => {
    const proxy = await startProxy();
    expect(await get(proxy.port, alice)).toBe('ok');
    expect(await get(proxy.port)).toBe('refused');
    expect(await get(proxy.port, mallory)).toBe('refused');
    expect(proxy.records).toHaveLength(1); // nothing of the refused clients reached the app or the slot

    copyFileSync(otherCa.certFile, proxy.caFile);
    await waitFor(() => proxy.stats().reloaded === 1, 'the rotated client CA taken up');
    expect(await get(proxy.port, mallory)).toBe('ok');
    expect(await get(proxy.port, alice)).toBe('refused');
  });
});

describe('mutual TLS config', () => {
  const problemsOf = configProblems;
  const notPem = join(dir, 'not-a-ca.pem');
  writeFileSync(notPem, 'not a certificate\n');
  const tls = { CANARY_GATE_PROXY_TLS_CERT_FILE: server.certFile, CANARY_GATE_PROXY_TLS_KEY_FILE: server.keyFile };

  it.each([
    ['a client CA file', { ...tls, CANARY_GATE_PROXY_TLS_CLIENT_CA_FILE: clientCa.certFile }, null],
    [
      'a client CA file without PEM',
      { ...tls, CANARY_GATE_PROXY_TLS_CLIENT_CA_FILE: notPem },
      /^proxy\.tls\.clientCaFile: .*not-a-ca\.pem holds no PEM CA certificates/,
    ],
    [
      'a missing client CA file',
      { ...tls, CANARY_GATE_PROXY_TLS_CLIENT_CA_FILE: join(dir, 'missing.pem') },
      /^proxy\.tls\.clientCaFile: cannot read .*missing\.pem: ENOENT/,
    ],
    [
      'a client CA file without the TLS port',
      { CANARY_GATE_PROXY_TLS_CLIENT_CA_FILE: clientCa.certFile },
      /^proxy\.tls\.clientCaFile: needs proxy\.tls\.certFile and keyFile/,
    ],
  ])('%s', (_case, env, expected) => {
    const problems = problemsOf(env);
    if (expected === null) expect(problems).toEqual([]);
    else {
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(expected);
    }
  });
});
