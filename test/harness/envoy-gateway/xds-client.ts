/**
 * A small xDS client that asks Envoy Gateway's own xDS server for what an Envoy proxy of one Gateway
 * would get, so a test can read the xDS EG ends up with without an Envoy binary.
 *
 * How EG serves it (v1.9, `internal/xds/runner` and `internal/xds/cache`): go-control-plane's ADS on
 * `0.0.0.0:18000`, TLS 1.3 only with a *required* client certificate signed by the certgen CA
 * (`crypto.LoadTLSConfig`); the server certificate is issued for `envoy-gateway.<ns>.svc…`, so the
 * client overrides the TLS server name. Snapshots are keyed by the node's `cluster`, which must be the
 * IR key `<gateway namespace>/<gateway name>` (without `mergeGateways`); the node `id` is free. The
 * client uses the certgen `envoy` Secret's certificate, exactly what EG mounts into its proxies.
 *
 * State of the world over ADS, every type subscribed with the explicit wildcard `*` (go-control-plane
 * honours it for RDS and EDS too), each response ACKed so EG pushes the next version. Or, with `delta`,
 * incremental ADS as Envoy speaks it (EG's bootstrap says DELTA_GRPC): needed wherever a real Envoy
 * talks to the same EG, because EG v1.9.1's snapshot cache (`internal/xds/cache/snapshotcache.go`) keys
 * its stream→node map by stream id, and go-control-plane numbers state-of-the-world and delta streams
 * with two counters that both start at 1: a state-of-the-world watcher and Envoy's delta stream then
 * share id 1, one overwrites the other's node, and only one of them gets the snapshots after (seen:
 * Envoy stuck PRE_INITIALIZING, or Envoy never taking an edit the watcher saw). A delta response is
 * sent only for types whose resources changed, so `versions` moves per type only then.
 *
 * @module
 */
import { join } from 'node:path';
import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { type Cluster, ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type ClusterLoadAssignment,
  ClusterLoadAssignmentSchema,
} from '../../../gen/envoy/config/endpoint/v3/endpoint_pb.ts';
import { type Listener, ListenerSchema } from '../../../gen/envoy/config/listener/v3/listener_pb.ts';
import {
  type RouteConfiguration,
  RouteConfigurationSchema,
} from '../../../gen/envoy/config/route/v3/route_pb.ts';
import { prepareProtoDeps } from '../../../scripts/generate-proto.ts';
import { REPO_ROOT } from '../support/binary.ts';

export const TYPE_URLS = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;
type Kind = keyof typeof TYPE_URLS;

/** The latest state of the world EG sent for each type, decoded with our generated (older) protos. */
export interface XdsState {
  clusters: Map<string, Cluster>;
  listeners: Map<string, Listener>;
  routes: Map<string, RouteConfiguration>;
  endpoints: Map<string, ClusterLoadAssignment>;
  /** `version_info` of the last response per type. */
  versions: Partial<Record<Kind, string>>;
  /** How many responses arrived in total (all types). */
  responses: number;
}

export interface XdsClientOptions {
  /** `host:port` of EG's xDS server. */
  address: string;
  /** PEM: the certgen CA, and the client certificate and key (the `envoy` Secret). */
  ca: string;
  cert: string;
  key: string;
  /** Name the server certificate is checked against; default `envoy-gateway`. */
  serverName?: string;
  /** The IR key: `<gateway namespace>/<gateway name>`. */
  nodeCluster: string;
  /** Unique per stream by default (EG's snapshot cache is keyed by node id). */
  nodeId?: string;
  /** Incremental (delta) ADS instead of state of the world; see the module comment for when. */
  delta?: boolean;
}

export interface XdsWatch {
  /** The latest state (live object; copy what you keep). */
  readonly state: XdsState;
  /**
   * Resolves with the state once `accept` holds for it, checked on every response and every 100 ms;
   * rejects after `timeoutMs`.
   */
  waitFor(accept: (state: XdsState) => boolean, timeoutMs: number, what?: string): Promise<XdsState>;
  close(): void;
}

// biome-ignore lint/suspicious/noExplicitAny: proto-loader hands back untyped messages.
type Message = Record<string, any>;

const SCHEMAS: Record<Kind, DescMessage> = {
  cluster: ClusterSchema,
  listener: ListenerSchema,
  route: RouteConfigurationSchema,
  endpoint: ClusterLoadAssignmentSchema,
};

let streams = 0;
let adsConstructor: Promise<grpc.ServiceClientConstructor> | undefined;

async function adsService(): Promise<grpc.ServiceClientConstructor> {
  adsConstructor ??= (async () => {
    await prepareProtoDeps();
    const definition = protoLoader.loadSync(['envoy/service/discovery/v3/ads.proto'], {
      includeDirs: [
        join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps/envoy-api'),
        join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps/xds'),
        join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps/googleapis'),
        join(REPO_ROOT, '.build/proto-deps/validate'),
      ],
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as Message;
    return pkg.envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;
  })();
  return adsConstructor;
}

/** Opens one ADS stream and keeps the latest clusters, listeners, routes and endpoints. */
export async function watchXds(options: XdsClientOptions): Promise<XdsWatch> {
  const Ads = await adsService();
  const credentials = grpc.credentials.createSsl(
    Buffer.from(options.ca),
    Buffer.from(options.key),
    Buffer.from(options.cert),
  );
  const serverName = options.serverName ?? 'envoy-gateway';
  const client = new Ads(options.address, credentials, {
    'grpc.ssl_target_name_override': serverName,
    'grpc.default_authority': serverName,
    'grpc.max_receive_message_length': 256 * 1024 * 1024,
  });
  const node = {
    // EG's cache keys snapshots by node id: each stream needs its own, or it gets another Gateway's.
    id: options.nodeId ?? `tsgw-e2e-${process.pid}-${++streams}`,
    cluster: options.nodeCluster,
    userAgentName: 'tailscale-gateway-tests',
  };
  const state: XdsState = {
    clusters: new Map(),
    listeners: new Map(),
    routes: new Map(),
    endpoints: new Map(),
    versions: {},
    responses: 0,
  };
  const byKind: Record<Kind, Map<string, { name?: string; clusterName?: string }>> = {
    cluster: state.clusters,
    listener: state.listeners,
    route: state.routes,
    endpoint: state.endpoints,
  };
  const kindOf = new Map(Object.entries(TYPE_URLS).map(([kind, url]) => [url, kind as Kind]));
  const waiters = new Set<() => void>();
  let failure: Error | undefined;

  const methods = client as unknown as Record<string, () => grpc.ClientDuplexStream<Message, Message>>;
  const stream = options.delta ? methods.DeltaAggregatedResources!() : methods.StreamAggregatedResources!();
  const decode = (kind: Kind, any: Message) =>
    fromBinary(SCHEMAS[kind], any.value as Uint8Array) as MessageShape<DescMessage> & {
      name?: string;
      clusterName?: string;
    };
  const keyOf = (kind: Kind, message: { name?: string; clusterName?: string }) =>
    kind === 'endpoint' ? (message.clusterName ?? '') : (message.name ?? '');
  stream.on('data', (response: Message) => {
    const kind = kindOf.get(response.typeUrl);
    if (!kind) return;
    const map = byKind[kind];
    if (options.delta) {
      // DeltaDiscoveryResponse: the resources that changed, and the names of those removed.
      for (const resource of (response.resources ?? []) as Message[]) {
        if (resource.resource) map.set(resource.name ?? '', decode(kind, resource.resource as Message));
      }
      for (const name of (response.removedResources ?? []) as string[]) map.delete(name);
      state.versions[kind] = response.systemVersionInfo;
      stream.write({ node, typeUrl: response.typeUrl, responseNonce: response.nonce });
    } else {
      map.clear();
      for (const any of (response.resources ?? []) as Message[]) {
        const message = decode(kind, any);
        map.set(keyOf(kind, message), message);
      }
      state.versions[kind] = response.versionInfo;
      // ACK, so the server sends the next version of this type.
      stream.write({
        node,
        typeUrl: response.typeUrl,
        resourceNames: ['*'],
        versionInfo: response.versionInfo,
        responseNonce: response.nonce,
      });
    }
    state.responses++;
    for (const wake of [...waiters]) wake();
  });
  stream.on('error', (error: grpc.ServiceError) => {
    if (error.code === grpc.status.CANCELLED) return;
    failure = error;
    for (const wake of [...waiters]) wake();
  });
  for (const typeUrl of Object.values(TYPE_URLS))
    stream.write(
      options.delta
        ? { node, typeUrl, resourceNamesSubscribe: ['*'] }
        : { node, typeUrl, resourceNames: ['*'] },
    );

  let closed = false;
  return {
    state,
    waitFor(accept, timeoutMs, what = 'xDS state') {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (failure) {
            cleanup();
            reject(new Error(`xDS stream failed while waiting for ${what}: ${failure.message}`));
          } else if (accept(state)) {
            cleanup();
            resolve(state);
          }
        };
        // Also re-checked on a tick: `accept` may look at more than the xDS state (e.g. EG's log).
        const tick = setInterval(check, 100);
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${what} within ${timeoutMs} ms; xDS now: ${describeXds(state)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          clearInterval(tick);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close() {
      if (closed) return;
      closed = true;
      stream.cancel();
      client.close();
    },
  };
}

/** One line naming what the state holds, for failure messages and logs. */
export function describeXds(state: XdsState): string {
  return JSON.stringify({
    versions: state.versions,
    clusters: [...state.clusters.keys()],
    listeners: [...state.listeners.keys()],
    routes: [...state.routes.values()].map((rc) => ({
      name: rc.name,
      virtualHosts: rc.virtualHosts.map((vh) => ({ name: vh.name, routes: vh.routes.map((r) => r.name) })),
    })),
    endpoints: [...state.endpoints.keys()],
  });
}
