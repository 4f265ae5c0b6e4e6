/**
 * The API of `gateway.tailscale.com/v1alpha1`: types, schemas, validation and CRDs, all derived from
 * the valibot schemas in this folder.
 *
 * @module
 */

export {
  CATEGORY,
  type CustomResourceDefinition,
  crdAsYaml,
  crdFileName,
  crdsAsYaml,
  GENERATED_HEADER,
  renderCrd,
  renderCrds,
} from './crd.ts';
export {
  type CelRule,
  cel,
  type KubernetesExtensions,
  k8s,
  listMap,
  listSet,
  toOpenApiSchema,
} from './extensions.ts';
export { type AnyResource, isKind, KIND_DEFINITIONS, KINDS, type Kind, RESOURCE_SCHEMAS } from './kinds.ts';
export {
  API_VERSION,
  type Condition,
  GROUP,
  type KindDefinition,
  type LocalPolicyTargetReference,
  type ObjectMeta,
  parseDuration,
  VERSION,
} from './meta.ts';
export * from './tailscale-endpoints.ts';
export * from './tailscale-gateway.ts';
export * from './tailscale-proxy-group.ts';
export * from './tailscale-route-policy.ts';
export * from './tailscale-tailnet.ts';
export {
  type Checked,
  checkResource,
  formatPath,
  parseResource,
  type ResourceOf,
  type ValidationIssue,
  type ValidationResult,
  validateResource,
} from './validate.ts';
