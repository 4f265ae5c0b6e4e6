/**
 * Envoy Gateway-shaped xDS resources for the extension server's tests and benchmark: EDS clusters named
 * the way EG names them, one RouteConfiguration (with its virtual host) per cluster, a few TLS secrets,
 * encoded with our generated code. Unknown fields can be appended to check they survive untouched.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import {
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
  ClusterSchema,
} from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import { ApiVersion } from '../../../gen/envoy/config/core/v3/config_source_pb.ts';
import { ListenerSchema } from '../../../gen/envoy/config/listener/v3/listener_pb.ts';
import { RouteConfigurationSchema } from '../../../gen/envoy/config/route/v3/route_pb.ts';
import { SecretSchema } from '../../../gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.ts';
import { RawPostTranslateModifyRequestSchema } from '../../../gen/tsgw/extension/v1/raw_pb.ts';

/** Field 9999 as a length-delimited unknown field: tag (9999 << 3 | 2) = 79994 → varint bytes. */
export function withUnknownField(message: Uint8Array, payload: string): Uint8Array {
  const data = new TextEncoder().encode(payload);
  const tag = [0xfa, 0xf0, 0x04]; // varint of 79994
  const out = new Uint8Array(message.byteLength + tag.length + 1 + data.byteLength);
  out.set(message, 0);
  out.set(tag, message.byteLength);
  out[message.byteLength + tag.length] = data.byteLength; // payloads here are < 128 bytes
  out.set(data, message.byteLength + tag.length + 1);
  return out;
}

export function encodeCluster(i: number): Uint8Array {
  const name = `httproute/default/backend-${i}/rule/0`;
  return toBinary(
    ClusterSchema,
    create(ClusterSchema, {
      name,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
      edsClusterConfig: {
        serviceName: name,
        edsConfig: { configSourceSpecifier: { case: 'ads', value: {} }, resourceApiVersion: ApiVersion.V3 },
      },
      connectTimeout: durationFromMs(10_000),
      perConnectionBufferLimitBytes: 32768,
      lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
      ignoreHealthOnHostRemoval: true,
    }),
  );
}

export function encodeRouteConfiguration(i: number): Uint8Array {
  const cluster = `httproute/default/backend-${i}/rule/0`;
  return toBinary(
    RouteConfigurationSchema,
    create(RouteConfigurationSchema, {
      name: `default/eg/http-${i}`,
      ignorePortInHostMatching: true,
      virtualHosts: [
        {
          name: `default/eg/http-${i}/app-${i}_example_com`,
          domains: [`app-${i}.example.com`],
          routes: [
            {
              name: `httproute/default/backend-${i}/rule/0/match/0/app-${i}_example_com`,
              match: { pathSpecifier: { case: 'prefix', value: '/' } },
              action: {
                case: 'route',
                value: {
                  clusterSpecifier: { case: 'cluster', value: cluster },
                  timeout: durationFromMs(15_000),
                },
              },
            },
          ],
        },
      ],
    }),
  );
}

export function encodeSecret(i: number): Uint8Array {
  return toBinary(
    SecretSchema,
    create(SecretSchema, {
      name: `default/tls-secret-${i}`,
      type: {
        case: 'tlsCertificate',
        value: {
          certificateChain: {
            specifier: { case: 'inlineBytes', value: new Uint8Array(1200).fill(0x41 + i) },
          },
          privateKey: { specifier: { case: 'inlineBytes', value: new Uint8Array(1700).fill(0x61 + i) } },
        },
      },
    }),
  );
}

export function encodeListener(name: string): Uint8Array {
  return toBinary(ListenerSchema, create(ListenerSchema, { name, statPrefix: name }));
}

export interface TranslateFixture {
  clusters: Uint8Array[];
  routes: Uint8Array[];
  secrets: Uint8Array[];
  listeners: Uint8Array[];
  /** The encoded PostTranslateModifyRequest (no gRPC envelope). */
  request: Uint8Array;
}

/** `clusters` clusters and as many RouteConfigurations, three secrets and one listener. */
export function translateFixture(
  clusters: number,
  options: { unknownFields?: boolean } = {},
): TranslateFixture {
  const mark = (bytes: Uint8Array, what: string) =>
    options.unknownFields ? withUnknownField(bytes, `unknown-${what}`) : bytes;
  const fixture = {
    clusters: Array.from({ length: clusters }, (_, i) => mark(encodeCluster(i), `cluster-${i}`)),
    routes: Array.from({ length: clusters }, (_, i) => mark(encodeRouteConfiguration(i), `route-${i}`)),
    secrets: Array.from({ length: 3 }, (_, i) => mark(encodeSecret(i), `secret-${i}`)),
    listeners: [mark(encodeListener('default/eg/http'), 'listener')],
  };
  const request = toBinary(
    RawPostTranslateModifyRequestSchema,
    create(RawPostTranslateModifyRequestSchema, {
      postTranslateContext: { extensionResources: [{ unstructuredBytes: new TextEncoder().encode('{}') }] },
      ...fixture,
    }),
  );
  return { ...fixture, request };
}

/** A gRPC length-prefixed message frame (uncompressed). */
export function grpcFrame(message: Uint8Array, compressed = false): Uint8Array {
  const frame = new Uint8Array(5 + message.byteLength);
  frame[0] = compressed ? 1 : 0;
  new DataView(frame.buffer).setUint32(1, message.byteLength);
  frame.set(message, 5);
  return frame;
}
