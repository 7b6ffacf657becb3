/**
 * The proxy's TLS certificate and key (`proxy.tls.certFile`, `proxy.tls.keyFile`): read from files once at start-up,
 * parsed and matched, so that a missing file, a bad PEM or a key of another certificate fails the start (exit code 2)
 * with the field's path, like every config error, instead of failing the first TLS handshake.
 *
 * The paths are what Envoy calls `certificate_chain.filename` and `private_key.filename` and what Istio's Gateway
 * calls `serverCertificate` and `privateKey`; mounted from a Kubernetes `kubernetes.io/tls` Secret they are
 * `tls.crt` and `tls.key`.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The config fields, as in Config['proxy']['tls']: file paths, both empty for off. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** The PEM contents Node's TLS server takes: the certificate (the leaf first, then any intermediates) and its key. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** One problem, `path: reason` as the config loader reports it. */
export interface TlsProblem {
  readonly path: string;
  readonly reason: string;
}

/** Whether TLS is configured: both files named (one without the other is a config problem, see {@link readTlsFiles}). */
export const tlsEnabled = (tls: TlsFiles): boolean => tls.certFile !== '' && tls.keyFile !== '';

/**
 * Reads and checks the certificate and key files.
 * @returns the PEM contents, or every problem found, each naming its field (`proxy.tls.certFile`): a file that cannot
 *   be read, a certificate or key that does not parse as PEM (an encrypted key counts: the sidecar has no passphrase),
 *   a key that is not the certificate's
 */
export function readTlsFiles(tls: TlsFiles): TlsMaterial | TlsProblem[] {
  const problems: TlsProblem[] = [];
  const read = (path: string, file: string): Buffer | null => {
    try {
      return readFileSync(file);
    } catch (err) {
      problems.push({ path, reason: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return null;
    }
  };
  const cert = read('proxy.tls.certFile', tls.certFile);
  const key = read('proxy.tls.keyFile', tls.keyFile);
  let x509: X509Certificate | null = null;
  let keyObject: ReturnType<typeof createPrivateKey> | null = null;
  if (cert !== null) {
    try {
      x509 = new X509Certificate(cert);
    } catch (err) {
      problems.push({ path: 'proxy.tls.certFile', reason: `${tls.certFile} holds no PEM certificate (${firstLine(err)})` });
    }
  }
  if (key !== null) {
    try {
      keyObject = createPrivateKey(key);
    } catch (err) {
      problems.push({ path: 'proxy.tls.keyFile', reason: `${tls.keyFile} holds no unencrypted PEM private key (${firstLine(err)})` });
    }
  }
  if (x509 !== null && keyObject !== null && !x509.checkPrivateKey(keyObject))
    problems.push({ path: 'proxy.tls.keyFile', reason: `${tls.keyFile} is not the private key of the certificate in ${tls.certFile}` });
  if (problems.length > 0 || cert === null || key === null) return problems;
  return { cert, key };
}

const firstLine = (err: unknown): string => String((err as Error).message ?? err).split('\n')[0]!;
