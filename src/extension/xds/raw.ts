/**
 * Reading the little PostTranslateModify needs from encoded xDS resources without decoding them:
 * decoding and re-encoding every cluster and RouteConfiguration Envoy Gateway sends would cost time on
 * each translation and could change bytes (field order, unknown fields) of resources this extension
 * does not own.
 *
 * @module
 */
import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { type Metadata, MetadataSchema } from '../../../gen/envoy/config/core/v3/base_pb.ts';

/** `envoy.config.cluster.v3.Cluster.name`. */
const CLUSTER_NAME_FIELD = 1;
/** `envoy.config.route.v3.RouteConfiguration.name` and `.virtual_hosts`. */
const ROUTE_CONFIG_NAME_FIELD = 1;
const ROUTE_CONFIG_VHOSTS_FIELD = 2;
/** `envoy.config.route.v3.VirtualHost.name` and `.metadata`. */
const VHOST_NAME_FIELD = 1;
const VHOST_METADATA_FIELD = 24;

/**
 * The `name` of an encoded Cluster, or undefined when the bytes are not a readable message or carry no
 * name. Never throws: resources this extension does not own pass through whatever they contain.
 */
export function readClusterName(bytes: Uint8Array): string | undefined {
  try {
    const reader = new BinaryReader(bytes);
    let name: string | undefined;
    while (reader.pos < reader.len) {
      const [fieldNo, wireType] = reader.tag();
      // Proto3 allows a field to repeat; the last occurrence wins, as in a full decode.
      if (fieldNo === CLUSTER_NAME_FIELD && wireType === WireType.LengthDelimited) name = reader.string();
      else reader.skip(wireType, fieldNo);
    }
    return name;
  } catch {
    return undefined;
  }
}

/** What tells a virtual host's Gateway: its name and metadata (routes and domains are skipped). */
export interface VirtualHostSummary {
  name: string;
  readonly metadata: Metadata | undefined;
}

export interface RouteConfigSummary {
  name: string;
  virtualHosts: VirtualHostSummary[];
}

function readVirtualHostSummary(bytes: Uint8Array): VirtualHostSummary {
  const reader = new BinaryReader(bytes);
  let name = '';
  const metadata: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === VHOST_NAME_FIELD && wireType === WireType.LengthDelimited) name = reader.string();
    else if (fieldNo === VHOST_METADATA_FIELD && wireType === WireType.LengthDelimited)
      metadata.push(reader.bytes());
    else reader.skip(wireType, fieldNo);
  }
  // Decoded on first use only: a legacy virtual-host name already tells its Gateway, and decoding the
  // Struct of every virtual host of every RouteConfiguration was most of the hook's cost. A message
  // field that occurs more than once is merged; decoding the occurrences back to back is exactly that
  // merge.
  let decoded: Metadata | undefined | null = null;
  return {
    name,
    get metadata() {
      if (decoded === null)
        decoded = metadata.length === 0 ? undefined : fromBinary(MetadataSchema, Buffer.concat(metadata));
      return decoded;
    },
  };
}

/**
 * The name of an encoded RouteConfiguration and the name and metadata of each of its virtual hosts,
 * without decoding a route: enough to tell which Gateways (and listeners) it serves. Undefined when the
 * bytes are not a readable RouteConfiguration. Never throws.
 */
export function readRouteConfigSummary(bytes: Uint8Array): RouteConfigSummary | undefined {
  try {
    const reader = new BinaryReader(bytes);
    let name = '';
    const virtualHosts: VirtualHostSummary[] = [];
    while (reader.pos < reader.len) {
      const [fieldNo, wireType] = reader.tag();
      if (fieldNo === ROUTE_CONFIG_NAME_FIELD && wireType === WireType.LengthDelimited)
        name = reader.string();
      else if (fieldNo === ROUTE_CONFIG_VHOSTS_FIELD && wireType === WireType.LengthDelimited)
        virtualHosts.push(readVirtualHostSummary(reader.bytes()));
      else reader.skip(wireType, fieldNo);
    }
    return { name, virtualHosts };
  } catch {
    return undefined;
  }
}
