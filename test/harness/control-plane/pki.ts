/**
 * Throwaway PKI for the test control plane, made with the `openssl` CLI in one shell call.
 *
 * EC P-256 keys throughout: generating them takes milliseconds, where RSA 2048 would add about a
 * second per key to every control-plane start. The service-account key is EC too, so tokens are ES256,
 * which kube-apiserver accepts.
 *
 * @module
 */

import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

// One day is plenty for a test run; `cluster:up` state is recreated on the next `up` after expiry anyway.
const SCRIPT = `
set -euo pipefail
cd "$1"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj "/CN=tailscale-gateway-test-ca" \\
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -x509 $ec -keyout server.key -out server.crt -days 2 -subj "/CN=kube-apiserver" \\
  -CA ca.crt -CAkey ca.key \\
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \\
  -addext "extendedKeyUsage=serverAuth" \\
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \\
  2>/dev/null
openssl req -x509 $ec -keyout admin.key -out admin.crt -days 2 -subj "/O=system:masters/CN=admin" \\
  -CA ca.crt -CAkey ca.key \\
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \\
  -addext "extendedKeyUsage=clientAuth" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out sa.key
openssl pkey -in sa.key -pubout -out sa.pub
chmod 600 ./*.key
`;

/** Writes a fresh CA, serving cert, admin client cert and service-account key pair into `dir`. */
export function generatePki(dir: string): Pki {
  const result = Bun.spawnSync(['bash', '-c', SCRIPT, 'pki', dir], { stdout: 'pipe', stderr: 'pipe' });
  if (result.exitCode !== 0) {
    throw new Error(`generating the test PKI with openssl failed: ${result.stderr.toString().trim()}`);
  }
  const at = (name: string) => join(dir, name);
  return {
    dir,
    caCert: at('ca.crt'),
    caKey: at('ca.key'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    adminCert: at('admin.crt'),
    adminKey: at('admin.key'),
    serviceAccountKey: at('sa.key'),
    serviceAccountPub: at('sa.pub'),
  };
}
