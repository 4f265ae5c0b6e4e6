import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OperatorError } from '../../errors.ts';
import { readTlsFiles, type TlsFiles } from './tls-files.ts';

let dir: string;
const path = (name: string) => join(dir, name);

/** An EC P-256 self-signed certificate and its key, made with the openssl CLI. */
async function selfSigned(name: string): Promise<void> {
  const child = Bun.spawn(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ],
    { cwd: dir, stdout: 'ignore', stderr: 'pipe' },
  );
  if ((await child.exited) !== 0) throw new Error(await new Response(child.stderr).text());
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsgw-tls-files-'));
  await selfSigned('a');
  await selfSigned('b');
  writeFileSync(path('notes.txt'), 'not a certificate\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const failure = (files: TlsFiles): OperatorError => {
  try {
    readTlsFiles(files);
  } catch (error) {
    expect(error).toBeInstanceOf(OperatorError);
    return error as OperatorError;
  }
  throw new Error('expected a failure');
};

describe('readTlsFiles', () => {
  test('a matching certificate and key, with a CA, load', () => {
    const material = readTlsFiles({
      certFile: path('a.crt'),
      keyFile: path('a.key'),
      clientCaFile: path('b.crt'),
    });
    expect(String(material.cert)).toContain('BEGIN CERTIFICATE');
  });

  test('a certificate file that is not PEM names the flag and file, as a usage error', () => {
    const error = failure({ certFile: path('notes.txt'), keyFile: path('a.key') });
    expect(error.code).toBe('Invalid');
    expect(error.field).toBe('--grpc-tls-cert');
    expect(error.message).toBe(`--grpc-tls-cert ${path('notes.txt')}: no PEM certificate in the file`);
  });

  test('a key file that is not a PEM key (here the certificate) names --grpc-tls-key', () => {
    const error = failure({ certFile: path('a.crt'), keyFile: path('a.crt') });
    expect(error.field).toBe('--grpc-tls-key');
    expect(error.message).toBe(`--grpc-tls-key ${path('a.crt')}: no PEM private key in the file`);
  });

  test('a key of another certificate names both files', () => {
    const error = failure({ certFile: path('a.crt'), keyFile: path('b.key') });
    expect(error.field).toBe('--grpc-tls-key');
    expect(error.message).toBe(
      `--grpc-tls-key ${path('b.key')} is not the key of the certificate in --grpc-tls-cert ${path('a.crt')}`,
    );
  });

  test('a client CA file without a certificate (here a key) names --grpc-client-ca', () => {
    const error = failure({ certFile: path('a.crt'), keyFile: path('a.key'), clientCaFile: path('b.key') });
    expect(error.field).toBe('--grpc-client-ca');
    expect(error.message).toBe(`--grpc-client-ca ${path('b.key')}: no PEM certificate in the file`);
  });

  test('a missing file names the flag and the file', () => {
    const error = failure({ certFile: path('missing.crt'), keyFile: path('a.key') });
    expect(error.field).toBe('--grpc-tls-cert');
    expect(error.message).toStartWith(`--grpc-tls-cert ${path('missing.crt')}: cannot read the file (ENOENT`);
  });
});
