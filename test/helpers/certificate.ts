/** Self-signed TLS certificates for tests, made with openssl (Debian's `openssl`, on every machine `.ci/run` sets up). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A self-signed EC P-256 certificate for 127.0.0.1 and localhost, valid one day, and its key: PEM files
 * `<dir>/<name>.crt` and `<dir>/<name>.key`.
 * @returns the file paths and the certificate's PEM (to trust it as a CA)
 */
export function makeCertificate(dir: string, name: string): { certFile: string; keyFile: string; ca: Buffer } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile, ca: readFileSync(certFile) };
}
