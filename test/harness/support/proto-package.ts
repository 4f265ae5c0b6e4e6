/**
 * Our .proto files read by @grpc/proto-loader: an independent reading of the wire contract (none of our
 * generated code), so grpc-js clients in tests check what Envoy Gateway's own client would see.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { prepareProtoDeps, REPO_ROOT } from '../../../scripts/generate-proto.ts';

/** Loads `files` (paths under proto/) with the Envoy, xDS and validate protos they import. */
export async function loadProtoPackage(files: string[]): Promise<grpc.GrpcObject> {
  await prepareProtoDeps();
  const definition = protoLoader.loadSync(files, {
    includeDirs: [
      join(REPO_ROOT, 'proto'),
      join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps/envoy-api'),
      join(REPO_ROOT, 'node_modules/@grpc/grpc-js-xds/deps/xds'),
      join(REPO_ROOT, '.build/proto-deps/validate'),
    ],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}
