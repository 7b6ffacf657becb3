/**
 * Certificate rotation on the TLS port (`proxy.tls.reloadInterval`): the files are replaced as a renewed Kubernetes
 * Secret or cert-manager would replace them, and new connections must get the new certificate without a restart,
 * while a broken pair (a chain cut short, a key of another certificate, a file that is no PEM, a missing file) leaves
 * the one in service,
 * is counted once per change and never stops the port. Certificates are made with openssl for each run.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxyServer } from '../../src/proxy/proxy-server.ts';
import { makeCertificate } from '../helpers/certificate.ts';
import { loopbackProxyConfig, waitFor } from '../helpers/proxy-config.ts';
import { silent } from '../helpers/redis.ts';

const dir = mkdtempSync(join(tmpdir(), 'cg-tls-reload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const first = makeCertificate(dir, 'first');
const second = makeCertificate(dir, 'second');
const third = makeCertificate(dir, 'third');
const fingerprint = (pem: Buffer): string => new X509Certificate(pem).fingerprint256;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

/** A proxy whose certificate files (`served.crt`, `served.key`) start as `first`'s, in front of an app answering `ok`. */
async function startProxy(reloadInterval: number): Promise<{ proxy: ProxyServer; port: number; certFile: string; keyFile: string }> {
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => app.close(resolve)));
  const certFile = join(dir, `served-${reloadInterval}.crt`);
  const keyFile = join(dir, `served-${reloadInterval}.key`);
  copyFileSync(first.certFile, certFile);
  copyFileSync(first.keyFile, keyFile);
  const proxy = createProxyServer({
    config: loopbackProxyConfig(`http://127.0.0.1:${(app.address() as { port: number }).port}`, {
      tls: { certFile, keyFile, clientCaFile: '', reloadInterval },
    }),
    recorder: { record: () => undefined },
    logger: silent,
  });
  const { port } = await proxy.listen();
  cleanups.push(() => proxy.destroy());
  return { proxy, port, certFile, keyFile };
}

/** Opens a new TLS connection, sends one HTTP/1.1 request, and returns the certificate it got and the answer's body. */
async function fetchOver(port: number): Promise<{ fingerprint: string; body: string }> {
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  cleanups.push(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const got = socket.getPeerCertificate().fingerprint256;
  socket.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    text += chunk;
  });
  await new Promise((resolve) => socket.once('end', resolve));
  return { fingerprint: got, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

const install = (cert: { certFile: string; keyFile: string }, to: { certFile: string; keyFile: string }): void => {
  copyFileSync(cert.certFile, to.certFile);
  copyFileSync(cert.keyFile, to.keyFile);
};

describe('certificate rotation on the TLS port', () => {
  it('serves a renewed certificate to new connections, and keeps the one in service while the new pair is broken', async () => {
    const served = await startProxy(50);
    expect(await fetchOver(served.port)).toEqual({ fingerprint: fingerprint(first.ca), body: 'ok' });
    expect(served.proxy.stats.tls).toEqual({ reloaded: 0, failed: 0, notAfterMs: Date.parse(new X509Certificate(first.ca).validTo) });

    install(second, served);
    await waitFor(() => served.proxy.stats.tls!.reloaded === 1, 'the renewed certificate taken up');
    expect(await fetchOver(served.port)).toEqual({ fingerprint: fingerprint(second.ca), body: 'ok' });
    expect(served.proxy.stats.tls!.notAfterMs).toBe(Date.parse(new X509Certificate(second.ca).validTo));

    // Each broken state is counted once, however many reads see it, and the port keeps serving `second`.
    const broken: Array<[string, () => void]> = [
      // The leaf whole and its key right, the intermediate after it cut short: the server itself would refuse it.
      [
        'a chain whose intermediate is cut short',
        () => writeFileSync(served.certFile, Buffer.concat([second.ca, third.ca.subarray(0, 200)])),
      ],
      ['the key of another certificate', () => copyFileSync(third.certFile, served.certFile)],
      ['a key file that is no PEM', () => writeFileSync(served.keyFile, 'half written\n')],
      ['a missing certificate file', () => unlinkSync(served.certFile)],
    ];
    for (const [index, [what, breakIt]] of broken.entries()) {
      breakIt();
      await waitFor(() => served.proxy.stats.tls!.failed === index + 1, what);
      await new Promise((resolve) => setTimeout(resolve, 200)); // four more reads of the same broken files
      expect(served.proxy.stats.tls!.failed, what).toBe(index + 1);
      expect(await fetchOver(served.port), what).toEqual({ fingerprint: fingerprint(second.ca), body: 'ok' });
    }
    expect(served.proxy.stats.tls!.reloaded).toBe(1);

    install(third, served);
    await waitFor(() => served.proxy.stats.tls!.reloaded === 2, 'the repaired pair taken up');
    expect(await fetchOver(served.port)).toEqual({ fingerprint: fingerprint(third.ca), body: 'ok' });
  });

  it('with reloadInterval 0 reads the files once, at start-up', async () => {
    const served = await startProxy(0);
    install(second, served);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await fetchOver(served.port)).toEqual({ fingerprint: fingerprint(first.ca), body: 'ok' });
    expect(served.proxy.stats.tls).toEqual({ reloaded: 0, failed: 0, notAfterMs: Date.parse(new X509Certificate(first.ca).validTo) });
  });
});
