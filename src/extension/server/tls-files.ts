/**
 * The server certificate, key and optional client CA, read from files and re-read when they change.
 * In Kubernetes they come from a mounted Secret that cert-manager (or anyone) rotates by swapping the
 * files; Envoy Gateway re-reads its side at every handshake, so our side must follow without a restart.
 * Polling the modification times is cheap (three `stat` calls per interval) and, unlike fs.watch,
 * survives the symlink swap kubelet uses for Secret volumes.
 *
 * @module
 */
import { readFileSync, statSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { OperatorError } from '../../errors.ts';

export interface TlsFiles {
  /** PEM certificate chain of the server. */
  certFile: string;
  /** PEM private key of the server. */
  keyFile: string;
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  clientCaFile?: string;
}

/** Reads the files; throws `OperatorError('Invalid')` naming the file that cannot be read. */
export function readTlsFiles(files: TlsFiles): SecureContextOptions {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new OperatorError('Invalid', `cannot read the gRPC TLS ${what} ${path}: ${reason}`, {
        cause: error,
      });
    }
  };
  return {
    cert: read(files.certFile, 'certificate'),
    key: read(files.keyFile, 'key'),
    ...(files.clientCaFile === undefined ? {} : { ca: read(files.clientCaFile, 'client CA') }),
  };
}

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
