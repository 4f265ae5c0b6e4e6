/**
 * Remote members: a TailscaleGateway service published from another cluster joins the TailscaleEndpoints
 * it names as an explicit snapshot field, the clusters the hooks build get it at the next priority, and
 * the Gateway revision digest changes when (and only when) one appears.
 */
import { describe, expect, test } from 'bun:test';
import { create, fromBinary } from '@bufbuild/protobuf';
import { ClusterSchema } from '../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import { PostClusterModifyRequestSchema } from '../../gen/envoygateway/extension/service_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../../gen/tsgw/extension/v1/raw_pb.ts';
import type { TailscaleEndpoints } from '../api/index.ts';
import { createExtensionHooks } from '../extension/hooks/index.ts';
import { buildCluster } from '../extension/xds/clusters.ts';
import { gatewayRevision } from '../resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { servicesStatus, tcpGateway, webEndpoints } from '../testing/tcp-ingress.ts';
import { asSent, egCustomBackendCluster } from '../testing/xds-resources.ts';
import { buildSnapshot, type ResourceSnapshot } from './resource-store.ts';

describe('remote members', () => {
  const withRemote = tcpGateway(servicesStatus('Advertised', { remoteClusters: ['cluster-b'] }));

  test('another cluster attached: the VIP joins the named TailscaleEndpoints at the next priority', () => {
    const snapshot = buildSnapshot([withRemote, webEndpoints], 1);
    const copy = snapshot.getEndpoints('ns', 'web')!;
    expect(snapshot.remoteMembersByEndpoints.get('ns/web')).toEqual([
      {
        service: 'svc:web',
        address: '100.100.0.2',
        ports: [443, 80],
        clusters: ['cluster-b'],
      },
    ]);
    expect([...snapshot.remoteMembersByEndpoints.keys()]).toEqual(['ns/web']);
    // A later snapshot without the remote cluster has none, and the earlier one keeps what it had.
    expect(buildSnapshot([tcpGateway(), webEndpoints], 2).remoteMembersByEndpoints.size).toBe(0);
    expect(snapshot.remoteMembersByEndpoints.get('ns/web')).toHaveLength(1);
    const cluster = buildCluster(
      'c',
      copy.spec.endpoints.map((endpoint) => ({ endpoints: copy, endpoint })),
      {},
      snapshot.remoteMembersByEndpoints,
    );
    const localities = cluster.loadAssignment!.endpoints;
    expect(localities.map((l) => l.priority)).toEqual([0, 1]);
    const address = (i: number) => {
      const host = localities[i]!.lbEndpoints[0]!.hostIdentifier;
      if (host.case !== 'endpoint') throw new Error('no endpoint');
      const socket = host.value.address!.address;
      if (socket.case !== 'socketAddress') throw new Error('no socket address');
      return [socket.value.address, socket.value.portSpecifier.value, host.value.hostname];
    };
    expect(address(0)).toEqual(['web.app.svc.cluster.local', 80, 'web.app.svc.cluster.local']);
    expect(address(1)).toEqual(['100.100.0.2', 80, 'web.app.svc.cluster.local']);
  });

  test('no other cluster, no address, or not published: no remote member', () => {
    for (const status of [
      servicesStatus('Advertised'),
      servicesStatus('Refused', { remoteClusters: ['cluster-b'] }),
      { services: [{ ...servicesStatus('Published').services[0], addresses: [], remoteClusters: ['b'] }] },
    ]) {
      const snapshot = buildSnapshot([tcpGateway(status), webEndpoints], 1);
      expect(snapshot.remoteMembersByEndpoints.get('ns/web')).toBeUndefined();
    }
  });

  test('the Gateway revision changes when a remote member appears, and only then', () => {
    const none = gatewayRevision('ns/eg', buildSnapshot([tcpGateway(), webEndpoints], 1));
    expect(
      gatewayRevision('ns/eg', buildSnapshot([tcpGateway(servicesStatus('Advertised')), webEndpoints], 2)),
    ).toBe(none);
    expect(gatewayRevision('ns/eg', buildSnapshot([withRemote, webEndpoints], 3))).not.toBe(none);
  });

  test("a snapshot whose TailscaleEndpoints are copies keeps the remote members in the hooks' clusters", () => {
    const built = buildSnapshot([withRemote, webEndpoints], 1);
    // Anything may hand the hooks a copy (structuredClone, a spread, a decoded cache): the members are
    // the snapshot's, not the object's.
    const copies: TailscaleEndpoints[] = built.endpoints.map((e) => structuredClone(e));
    const copied: ResourceSnapshot = {
      ...built,
      endpoints: copies,
      getEndpoints: (namespace, name) =>
        copies.find((e) => e.metadata.namespace === namespace && e.metadata.name === name),
    };
    const hooks = createExtensionHooks({ proxies: false });
    const { response } = hooks.postTranslateModify(create(RawPostTranslateModifyRequestSchema, {}), copied);
    const cluster = response.clusters
      .map((bytes) => fromBinary(ClusterSchema, bytes))
      .find((c) => c.name === 'tailscale/ns/web/local');
    expect(cluster?.loadAssignment?.endpoints.map((l) => l.priority)).toEqual([0, 1]);
  });

  test("PostClusterModify fills EG's cluster with the snapshot's remote members too", () => {
    const snapshot = buildSnapshot([withRemote, webEndpoints], 1);
    const hooks = createExtensionHooks({ proxies: false });
    const { response } = hooks.postClusterModify(
      create(PostClusterModifyRequestSchema, {
        cluster: egCustomBackendCluster('httproute/ns/web/rule/0'),
        postClusterContext: { backendExtensionResources: [asSent(webEndpoints)] },
      }),
      snapshot,
    );
    expect(response.cluster?.loadAssignment?.endpoints.map((l) => l.priority)).toEqual([0, 1]);
  });
});
