/**
 * The proxy's TLS certificate and key (`proxy.tls.certFile`, `proxy.tls.keyFile`): read from files at start-up,
 * parsed and matched, so that a missing file, a bad PEM or a key of another certificate fails the start (exit code 2)
 * with the field's path, like every config error, instead of failing the first TLS handshake. Then read again every
 * `proxy.tls.reloadInterval` ({@link watchTlsFiles}): a changed pair that checks out the same way is served to new
 * connections, one that does not leaves the previous certificate in place.
 *
 * The paths are what Envoy calls `certificate_chain.filename` and `private_key.filename` and what Istio's Gateway
 * calls `serverCertificate` and `privateKey`; mounted from a Kubernetes `kubernetes.io/tls` Secret they are
 * `tls.crt` and `tls.key`.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from './logger.ts';

/** The config fields, as in Config['proxy']['tls']: file paths, both empty for off. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** The PEM contents Node's TLS server takes: the certificate (the leaf first, then any intermediates) and its key. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf certificate's notAfter, ms since the epoch. */
  readonly notAfterMs: number;
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
  if (problems.length > 0 || cert === null || key === null || x509 === null) return problems;
  return { cert, key, notAfterMs: Date.parse(x509.validTo) };
}

/** How the TLS port's certificate reloads went since start, and the certificate it serves. */
export interface TlsReloadStats {
  /** Changed files whose pair was taken up. */
  reloaded: number;
  /** Changed files whose pair did not check out: the previous certificate stayed. */
  failed: number;
  /** notAfter of the certificate new connections get, ms since the epoch. */
  notAfterMs: number;
}

/** A running {@link watchTlsFiles}. */
export interface TlsWatch {
  readonly stats: TlsReloadStats;
  /** Stops the timer (idempotent). */
  stop(): void;
  /** Reads the files now, as the timer does (tests, and a reload on demand). */
  check(): void;
}

/**
 * Reads the files every `intervalMs`; when their bytes differ from the last read, checks the pair as at start-up
 * ({@link readTlsFiles}) and hands a valid one to `apply` (e.g. `tls.Server.setSecureContext`: new connections get it,
 * open ones keep theirs). An invalid pair (a Secret half written, a wrong key) is logged once, with each field and
 * reason, and counted in `failed`; the certificate in service stays. Files that are the same as at the last read are
 * not checked again, so a file that stays broken is logged and counted once.
 * @param served the material the server started with
 * @param intervalMs ms between reads; the timer does not keep the process alive
 */
export function watchTlsFiles(
  tls: TlsFiles,
  served: TlsMaterial,
  intervalMs: number,
  apply: (material: TlsMaterial) => void,
  logger: Logger,
): TlsWatch {
  const stats: TlsReloadStats = { reloaded: 0, failed: 0, notAfterMs: served.notAfterMs };
  let lastRead: Buffer = Buffer.concat([served.cert, served.key]);
  const check = (): void => {
    let bytes: Buffer;
    try {
      bytes = Buffer.concat([readFileSync(tls.certFile), readFileSync(tls.keyFile)]);
    } catch {
      bytes = Buffer.alloc(0); // unreadable: readTlsFiles below names the file and the reason
    }
    if (bytes.equals(lastRead)) return;
    lastRead = bytes;
    const material = readTlsFiles(tls);
    if (Array.isArray(material)) {
      stats.failed++;
      logger.error(
        { problems: material.map((p) => `${p.path}: ${p.reason}`) },
        'proxy.tls: the changed certificate files do not check out; new connections keep the previous certificate',
      );
      return;
    }
    apply(material);
    stats.reloaded++;
    stats.notAfterMs = material.notAfterMs;
    logger.info({ notAfter: new Date(material.notAfterMs).toISOString() }, 'proxy.tls: certificate reloaded for new connections');
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return { stats, stop: () => clearInterval(timer), check };
}

const firstLine = (err: unknown): string => String((err as Error).message ?? err).split('\n')[0]!;
