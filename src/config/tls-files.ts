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
import { createSecureContext } from 'node:tls';
import type { Logger } from './logger.ts';

/** The config fields, as in Config['proxy']['tls']: file paths, certFile and keyFile both empty for off. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA certificates that sign the clients' certificates (mutual TLS); empty: no client certificate asked for. */
  readonly clientCaFile: string;
}

/**
 * The PEM contents Node's TLS server takes: the certificate (the leaf first, then any intermediates), its key, and the
 * CAs of the client certificates (null without mutual TLS).
 */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | null;
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

/** The files' bytes as read (null: unreadable, or no client CA file), and why a file could not be read. */
type TlsBytes = {
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
  readonly ca: Buffer | null;
  readonly problems: TlsProblem[];
};

function readBytes(tls: TlsFiles): TlsBytes {
  const problems: TlsProblem[] = [];
  const read = (path: string, file: string): Buffer | null => {
    try {
      return readFileSync(file);
    } catch (err) {
      problems.push({ path, reason: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return null;
    }
  };
  return {
    cert: read('proxy.tls.certFile', tls.certFile),
    key: read('proxy.tls.keyFile', tls.keyFile),
    ca: tls.clientCaFile === '' ? null : read('proxy.tls.clientCaFile', tls.clientCaFile),
    problems,
  };
}

/**
 * Checks bytes read from the files: the leaf certificate and the key parse, the key is the certificate's, and the whole
 * chain loads into a TLS secure context as the server will load it (an intermediate cut short fails here, not in the
 * server).
 */
function checkTlsBytes(tls: TlsFiles, bytes: TlsBytes): TlsMaterial | TlsProblem[] {
  const { cert, key, ca } = bytes;
  const problems = [...bytes.problems];
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
  if (ca !== null) {
    try {
      new X509Certificate(ca);
      createSecureContext({ ca });
    } catch (err) {
      problems.push({ path: 'proxy.tls.clientCaFile', reason: `${tls.clientCaFile} holds no PEM CA certificates (${firstLine(err)})` });
    }
  }
  if (problems.length > 0 || cert === null || key === null || x509 === null) return problems;
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    return [{ path: 'proxy.tls.certFile', reason: `${tls.certFile} does not load as a certificate chain (${firstLine(err)})` }];
  }
  return { cert, key, ca, notAfterMs: x509.validToDate.getTime() };
}

/**
 * Reads and checks the certificate and key files.
 * @returns the PEM contents, or every problem found, each naming its field (`proxy.tls.certFile`): a file that cannot
 *   be read, a certificate or key that does not parse as PEM (an encrypted key counts: the sidecar has no passphrase),
 *   a key that is not the certificate's, a chain that does not load (an intermediate cut short), a client CA file
 *   without a PEM certificate
 */
export function readTlsFiles(tls: TlsFiles): TlsMaterial | TlsProblem[] {
  return checkTlsBytes(tls, readBytes(tls));
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
 * Reads the files (the client CA file too) every `intervalMs`; when their bytes differ from the last read, checks the pair as at start-up
 * (the checks of {@link readTlsFiles}, on the bytes just read) and hands a valid one to `apply` (e.g.
 * `tls.Server.setSecureContext`: new connections get it, open ones keep theirs). An invalid pair (a Secret half
 * written, a wrong key), or one `apply` throws on, is logged once, with each field and reason, and counted in
 * `failed`; the certificate in service stays. Files whose bytes are the same as at the last read are not checked
 * again, so a file that stays broken is logged and counted once.
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
  let last: { cert: Buffer | null; key: Buffer | null; ca: Buffer | null } = { cert: served.cert, key: served.key, ca: served.ca };
  const same = (a: Buffer | null, b: Buffer | null): boolean => (a === null || b === null ? a === b : a.equals(b));
  const fail = (problems: readonly string[]): void => {
    stats.failed++;
    logger.error({ problems }, 'proxy.tls: the changed certificate files do not check out; new connections keep the previous certificate');
  };
  const check = (): void => {
    const bytes = readBytes(tls);
    if (same(bytes.cert, last.cert) && same(bytes.key, last.key) && same(bytes.ca, last.ca)) return;
    last = { cert: bytes.cert, key: bytes.key, ca: bytes.ca };
    const material = checkTlsBytes(tls, bytes);
    if (Array.isArray(material)) {
      fail(material.map((p) => `${p.path}: ${p.reason}`));
      return;
    }
    try {
      apply(material);
    } catch (err) {
      // The server refused what the check accepted: keep the certificate in service rather than let the timer throw.
      fail([`proxy.tls.certFile: the server did not take the new certificate (${firstLine(err)})`]);
      return;
    }
    stats.reloaded++;
    stats.notAfterMs = material.notAfterMs;
    logger.info({ notAfter: new Date(material.notAfterMs).toISOString() }, 'proxy.tls: certificate reloaded for new connections');
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return { stats, stop: () => clearInterval(timer), check };
}

const firstLine = (err: unknown): string => String((err as Error).message ?? err).split('\n')[0]!;
