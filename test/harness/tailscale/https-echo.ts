/**
 * Starts ./https-echo-server.ts inside a tailnet device's network namespace on its loopback, where the
 * device's userspace tailscaled forwards tailnet connections to that port: a TLS server the device
 * runs itself (not tailscaled's serve, which refuses a handshake for a name it has no certificate for
 * before a client could check the name), with a certificate the lab CA issued.
 *
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TailnetDevice, TailnetLab } from './tailnet-devices.ts';

export interface HttpsEchoRequest {
  name: string;
  method: string;
  path: string;
  host: string;
  /** `https:`: the request came in over TLS. */
  protocol: string;
  remote: string;
}

export interface HttpsEcho {
  /** Every request the server got, in order. */
  requests: HttpsEchoRequest[];
  stop(): Promise<void>;
}

/** `certificateFor`: the one DNS name of the certificate served (to every SNI). */
export async function startHttpsEcho(
  lab: TailnetLab,
  device: TailnetDevice,
  options: { certificateFor: string; port?: number },
): Promise<HttpsEcho> {
  const dir = mkdtempSync(join(tmpdir(), 'tsgw-https-echo-'));
  const issued = lab.issueCertificate(options.certificateFor);
  writeFileSync(join(dir, 'tls.crt'), issued.cert);
  writeFileSync(join(dir, 'tls.key'), issued.key, { mode: 0o600 });
  const proc = Bun.spawn(
    [
      'nsenter',
      `--net=${device.netns}`,
      '--',
      process.execPath,
      join(import.meta.dir, 'https-echo-server.ts'),
      device.name,
      `127.0.0.1:${options.port ?? 443}`,
      join(dir, 'tls.crt'),
      join(dir, 'tls.key'),
    ],
    { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' },
  );
  const requests: HttpsEchoRequest[] = [];
  const stop = async () => {
    proc.stdin.end();
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
    if (!exited) proc.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  const ready = Promise.withResolvers<void>();
  void (async () => {
    let buffered = '';
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      for (let eol = buffered.indexOf('\n'); eol >= 0; eol = buffered.indexOf('\n')) {
        const line = JSON.parse(buffered.slice(0, eol)) as { ready?: string; request?: HttpsEchoRequest };
        buffered = buffered.slice(eol + 1);
        if (line.ready) ready.resolve();
        if (line.request) requests.push(line.request);
      }
    }
    ready.reject(new Error(`https echo of ${device.name} exited: ${await new Response(proc.stderr).text()}`));
  })();
  try {
    await Promise.race([
      ready.promise,
      Bun.sleep(15_000).then(() => {
        throw new Error(`https echo of ${device.name} not ready after 15 s`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { requests, stop };
}
