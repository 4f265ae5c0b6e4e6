/**
 * Remote members: a TailscaleGateway service published from another cluster joins the TailscaleEndpoints
 * it names as an explicit snapshot field, the clusters the hooks build get it at the next priority, and
 * the Gateway revision digest changes when (and only when) one appears.
 */
import { describe, expect, test } from 'bun:test';
import { buildCluster } from '../extension/xds/clusters.ts';
import { gatewayRevision } from '../resources/tailscale-gateway/tailscale-gateway-trigger.ts';
import { servicesStatus, tcpGateway, webEndpoints } from '../testing/tcp-ingress.ts';
import { remoteMembersOf } from './remote-endpoints.ts';
import { buildSnapshot } from './resource-store.ts';

describe('remote members', () => {
  const withRemote = tcpGateway(servicesStatus('Advertised', { remoteClusters: ['cluster-b'] }));

  test('another cluster attached: the VIP joins the named TailscaleEndpoints at the next priority', () => {
    const snapshot = buildSnapshot([withRemote, webEndpoints], 1);
    const copy = snapshot.getEndpoints('ns', 'web')!;
    expect(remoteMembersOf(copy)).toEqual([
      {
        service: 'svc:web',
        address: '100.100.0.2',
        ports: [443, 80],
        clusters: ['cluster-b'],
      },
    ]);
    expect(remoteMembersOf(webEndpoints)).toEqual([]);
    const cluster = buildCluster(
      'c',
      copy.spec.endpoints.map((endpoint) => ({ endpoints: copy, endpoint })),
      {},
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
      expect(remoteMembersOf(snapshot.getEndpoints('ns', 'web')!)).toEqual([]);
    }
  });

  test('the Gateway revision changes when a remote member appears, and only then', () => {
    const none = gatewayRevision('ns/eg', buildSnapshot([tcpGateway(), webEndpoints], 1));
    expect(
      gatewayRevision('ns/eg', buildSnapshot([tcpGateway(servicesStatus('Advertised')), webEndpoints], 2)),
    ).toBe(none);
    expect(gatewayRevision('ns/eg', buildSnapshot([withRemote, webEndpoints], 3))).not.toBe(none);
  });
});
