/**
 * TLS certificates for tests, made with openssl (Debian's `openssl`, on every machine `.ci/run` sets up), and the
 * config problems a TLS setting gives.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { CanaryGateError } from '../../src/core/errors.ts';

/** openssl arguments for a new unencrypted EC P-256 key. */
const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** The `path: reason` lines the config loader reports for a config from `env` (none: it loads). */
export function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig({ env });
  } catch (err) {
    if (err instanceof CanaryGateError) return [...err.details];
    throw err;
  }
  return [];
}

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
      ...NEW_EC_KEY,
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

/**
 * A client certificate (CN `name`) signed by the CA certificate and key at `ca`, valid one day: PEM files
 * `<dir>/<name>.crt` and `<dir>/<name>.key`. A certificate from {@link makeCertificate} serves as the CA (openssl
 * marks a self-signed `req -x509` certificate CA:TRUE).
 */
export function makeClientCertificate(dir: string, name: string, ca: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const quiet = { stdio: 'ignore' } as const;
  execFileSync('openssl', ['req', '-new', ...NEW_EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`], quiet);
  execFileSync(
    'openssl',
    ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '1'],
    quiet,
  );
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}
