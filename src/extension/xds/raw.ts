/**
 * Reading the little PostTranslateModify needs from encoded xDS resources without decoding them:
 * decoding and re-encoding every cluster Envoy Gateway sends would cost time on each translation and
 * could change bytes (field order, unknown fields) of resources this extension does not own.
 *
 * @module
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** `envoy.config.cluster.v3.Cluster.name`. */
const CLUSTER_NAME_FIELD = 1;

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
