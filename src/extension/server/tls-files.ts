/**
 * The server certificate, key and optional client CA, read from files and re-read when they change.
 * In Kubernetes they come from a mounted Secret that cert-manager (or anyone) rotates by swapping the
 * files; Envoy Gateway re-reads its side at every handshake, so our side must follow without a restart.
 * Polling the modification times is cheap (three `stat` calls per interval) and, unlike fs.watch,
 * survives the symlink swap kubelet uses for Secret volumes.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { OperatorError } from '../../errors.ts';

export interface TlsFiles {
  /** PEM certificate chain of the server. */
  certFile: string;
  /** PEM private key of the server. */
  keyFile: string;
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  clientCaFile?: string;
}

/** The flag each file comes from, named in every error so the user knows what to fix. */
const FLAGS = { cert: '--grpc-tls-cert', key: '--grpc-tls-key', ca: '--grpc-client-ca' } as const;

/**
 * Reads and checks the files; throws `OperatorError('Invalid')` naming the flag and the file that is
 * unreadable, holds no PEM certificate or key, or holds a key of another certificate. Checked here
 * rather than left to the TLS server, whose OpenSSL errors (`PEM routines:…:NO_START_LINE`) name neither.
 */
export function readTlsFiles(files: TlsFiles): SecureContextOptions {
  const invalid = (flag: string, path: string, problem: string, cause?: unknown) =>
    new OperatorError('Invalid', `${flag} ${path}${problem}`, { field: flag, cause });
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw invalid(flag, path, `: cannot read the file (${reason(error)})`, error);
    }
  };
  const check = (flag: string, path: string, what: string, parse: () => unknown) => {
    try {
      parse();
    } catch (error) {
      throw invalid(
        flag,
        path,
        noPemBlock(error) ? `: no PEM ${what} in the file` : `: ${reason(error)}`,
        error,
      );
    }
  };
  const cert = read(FLAGS.cert, files.certFile);
  const key = read(FLAGS.key, files.keyFile);
  const ca = files.clientCaFile === undefined ? undefined : read(FLAGS.ca, files.clientCaFile);
  check(FLAGS.cert, files.certFile, 'certificate', () => new X509Certificate(cert));
  check(FLAGS.key, files.keyFile, 'private key', () => createPrivateKey(key));
  if (ca !== undefined) check(FLAGS.ca, files.clientCaFile!, 'certificate', () => new X509Certificate(ca));
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw invalid(
      FLAGS.key,
      files.keyFile,
      /KEY_VALUES_MISMATCH/.test(reason(error))
        ? ` is not the key of the certificate in ${FLAGS.cert} ${files.certFile}`
        : ` with ${FLAGS.cert} ${files.certFile}: ${reason(error)}`,
      error,
    );
  }
  return { cert, key, ...(ca === undefined ? {} : { ca }) };
}

const reason = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** OpenSSL's "no BEGIN line": the file is not PEM, or holds another kind of block. */
const noPemBlock = (error: unknown): boolean => /NO_START_LINE/.test(reason(error));

/** A fingerprint of the files' modification times and sizes; changes when any file is replaced. */
export function tlsFilesStamp(files: TlsFiles): string {
  return [files.certFile, files.keyFile, files.clientCaFile]
    .filter((path): path is string => path !== undefined)
    .map((path) => {
      try {
        const stat = statSync(path);
        return `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

export interface TlsReloaderOptions {
  files: TlsFiles;
  intervalMs: number;
  /** Receives the new material; may throw (a half-written pair), in which case `onError` is told. */
  apply(options: SecureContextOptions): void;
  onReload(): void;
  onError(error: unknown): void;
}

/** Polls for changed files and applies them; returns the stop function. */
export function watchTlsFiles(options: TlsReloaderOptions): () => void {
  let stamp = tlsFilesStamp(options.files);
  const timer = setInterval(() => {
    const next = tlsFilesStamp(options.files);
    if (next === stamp) return;
    try {
      options.apply(readTlsFiles(options.files));
      stamp = next;
      options.onReload();
    } catch (error) {
      // Keep the old context and retry at the next tick: a rotation writes cert and key one at a time.
      options.onError(error);
    }
  }, options.intervalMs);
  timer.unref?.();
  return () => clearInterval(timer);
}
