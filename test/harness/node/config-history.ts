/**
 * Every version of the proxies' config Secrets, as a watch on the apiserver delivers them: what each
 * replica was told to serve (the serve config's `Services`) and to advertise (`AdvertiseServices` of its
 * newest `cap-N.hujson`), in the order they were written. Polling could miss a version that lived a
 * moment; a watch from the list's resourceVersion sees each one, so a test can say "serve block before
 * advertisement" and "un-advertised before the serve block went" of what containerboot was handed.
 *
 * @module
 */
import type { V1Secret } from '@kubernetes/client-node';
import { advertisedServicesOf, serveServicesOf } from '../../../src/proxy/service-hosting.ts';
import type { NodeCluster } from './index.ts';

export interface ConfigVersion {
  /** The config Secret (`<base>-<replica>-config`). */
  name: string;
  resourceVersion: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** Services with a serve block. */
  serve: string[];
  advertise: string[];
}

export interface ConfigHistory {
  versions: ConfigVersion[];
  /** The versions of one Secret, oldest first. */
  of(name: string): ConfigVersion[];
  stop(): void;
}

const SELECTOR = encodeURIComponent('tailscale.com/secret-type=config');

/** Starts recording; resolves once the watch is open (versions written after that are all seen). */
export async function recordConfigHistory(cluster: NodeCluster, namespace: string): Promise<ConfigHistory> {
  const versions: ConfigVersion[] = [];
  let stopped = false;
  let reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } | undefined;
  const record = (type: ConfigVersion['type'], secret: V1Secret) => {
    versions.push({
      name: secret.metadata?.name ?? '',
      resourceVersion: secret.metadata?.resourceVersion ?? '',
      type,
      serve: Object.keys(serveServicesOf(secret)).sort(),
      advertise: advertisedServicesOf(secret).sort(),
    });
  };
  const list = (await (
    await cluster.request(`/api/v1/namespaces/${namespace}/secrets?labelSelector=${SELECTOR}`)
  ).json()) as { metadata: { resourceVersion: string }; items: V1Secret[] };
  for (const secret of list.items) record('ADDED', secret);
  let from = list.metadata.resourceVersion;
  const open = async () => {
    const res = await cluster.request(
      `/api/v1/namespaces/${namespace}/secrets?watch=true&labelSelector=${SELECTOR}&resourceVersion=${from}&timeoutSeconds=3600`,
    );
    if (!res.ok || !res.body) throw new Error(`watch config Secrets: ${res.status} ${await res.text()}`);
    return res.body.getReader() as NonNullable<typeof reader>;
  };
  reader = await open();
  void (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    while (!stopped) {
      const chunk = await reader!.read().catch(() => ({ done: true, value: undefined }));
      if (chunk.done) {
        if (stopped) return;
        // The apiserver ended the watch: go on from the last version seen.
        reader = await open().catch(() => undefined);
        if (!reader) return;
        continue;
      }
      buffered += decoder.decode(chunk.value, { stream: true });
      for (let eol = buffered.indexOf('\n'); eol >= 0; eol = buffered.indexOf('\n')) {
        const line = buffered.slice(0, eol);
        buffered = buffered.slice(eol + 1);
        if (!line.trim()) continue;
        const event = JSON.parse(line) as { type: string; object: V1Secret };
        if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED') {
          record(event.type, event.object);
          from = event.object.metadata?.resourceVersion ?? from;
        }
      }
    }
  })();
  return {
    versions,
    of: (name) => versions.filter((v) => v.name === name),
    stop() {
      stopped = true;
      void reader?.cancel().catch(() => undefined);
    },
  };
}
