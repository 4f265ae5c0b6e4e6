/**
 * PostTranslateModify: adds the cluster of every generated service, and passes everything of Envoy
 * Gateway's through as the very bytes it sent. The response lists replace EG's complete sets, so
 * nothing may be dropped; and EG's resources are never decoded (see xds/raw.ts), which also means a
 * resource our older protos cannot describe survives intact.
 *
 * @module
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { ClusterSchema } from '../../../gen/envoy/config/cluster/v3/cluster_pb.ts';
import {
  type RawPostTranslateModifyRequest,
  type RawPostTranslateModifyResponse,
  RawPostTranslateModifyResponseSchema,
} from '../../../gen/tsgw/extension/v1/raw_pb.ts';
import type { ResourceSnapshot } from '../../store/resource-store.ts';
import type { HookResult } from '../hooks.ts';
import { buildCluster } from '../xds/clusters.ts';
import { isGeneratedName } from '../xds/names.ts';
import { readClusterName } from '../xds/raw.ts';
import { allServices } from '../xds/route-generation.ts';
import { guarded, type HookOptions } from './context.ts';

export function postTranslateModify(
  req: RawPostTranslateModifyRequest,
  snapshot: ResourceSnapshot,
  options: HookOptions,
): HookResult<RawPostTranslateModifyResponse> {
  return guarded('PostTranslateModify', () => {
    const ours = allServices(snapshot).map((service) =>
      toBinary(ClusterSchema, buildCluster(service.name, service.members, options.egress)),
    );
    // Earlier output of ours (a chained extension may hand it back) is replaced, not duplicated. Only
    // names with our prefix are even looked at closely.
    const kept = req.clusters.filter((bytes) => {
      const name = readClusterName(bytes);
      return name === undefined || !isGeneratedName(name);
    });
    return {
      response: create(RawPostTranslateModifyResponseSchema, {
        clusters: [...kept, ...ours],
        secrets: req.secrets,
        listeners: req.listeners,
        routes: req.routes,
      }),
      effect: { clustersAdded: ours.length },
    };
  });
}
