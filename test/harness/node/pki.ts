/**
 * Throwaway PKI for the one-node cluster, made with the `openssl` CLI in one shell call.
 *
 * Beyond the shared control plane's PKI, a real node needs: the kubelet's client certificate in
 * `system:nodes` (the Node authorizer and NodeRestriction key on it), a kubelet serving certificate
 * for the node IP (the apiserver dials it for logs/exec), a client certificate for the apiserver →
 * kubelet direction, and the `kubernetes` Service IP in the apiserver's serving certificate (Pods reach
 * the apiserver there). EC P-256 throughout: milliseconds to make.
 *
 * @module
 */

import { join } from 'node:path';

export interface NodePki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  kubeletCert: string;
  kubeletKey: string;
  kubeletServingCert: string;
  kubeletServingKey: string;
  apiserverKubeletCert: string;
  apiserverKubeletKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const SCRIPT = `
set -euo pipefail
cd "$1"; node=$2; node_ip=$3; service_ip=$4
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj "/CN=tailscale-gateway-node-ca" \\
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
leaf() { # name subject extendedKeyUsage [subjectAltName]
  local san=()
  if [ -n "\${4:-}" ]; then san=(-addext "subjectAltName=$4"); fi
  openssl req -x509 $ec -keyout "$1.key" -out "$1.crt" -days 2 -subj "$2" -CA ca.crt -CAkey ca.key \\
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \\
    -addext "extendedKeyUsage=$3" "\${san[@]}" 2>/dev/null
}
leaf server "/CN=kube-apiserver" serverAuth \\
  "IP:$node_ip,IP:$service_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
leaf admin "/O=system:masters/CN=admin" clientAuth
leaf kubelet "/O=system:nodes/CN=system:node:$node" clientAuth
leaf kubelet-serving "/CN=$node" serverAuth "IP:$node_ip,DNS:$node"
leaf apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -out sa.key
openssl pkey -in sa.key -pubout -out sa.pub
chmod 600 ./*.key
`;

/** Writes the node cluster's CA, certificates and service-account key pair into `dir`. */
export function generateNodePki(dir: string, node: string, nodeIp: string, serviceIp: string): NodePki {
  const result = Bun.spawnSync(['bash', '-c', SCRIPT, 'pki', dir, node, nodeIp, serviceIp], {
    stdout: 'pipe',
    stderr: 'pipe',
  });
  if (result.exitCode !== 0) {
    throw new Error(`generating the node PKI with openssl failed: ${result.stderr.toString().trim()}`);
  }
  const at = (name: string) => join(dir, name);
  return {
    caCert: at('ca.crt'),
    caKey: at('ca.key'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    adminCert: at('admin.crt'),
    adminKey: at('admin.key'),
    kubeletCert: at('kubelet.crt'),
    kubeletKey: at('kubelet.key'),
    kubeletServingCert: at('kubelet-serving.crt'),
    kubeletServingKey: at('kubelet-serving.key'),
    apiserverKubeletCert: at('apiserver-kubelet.crt'),
    apiserverKubeletKey: at('apiserver-kubelet.key'),
    serviceAccountKey: at('sa.key'),
    serviceAccountPub: at('sa.pub'),
  };
}
