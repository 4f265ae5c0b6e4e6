/**
 * Multi-operator coordination of Tailscale Services: import from here, not from the files.
 *
 * @module
 */

export {
  type CoordinatorSettings,
  coordinatorTimings,
  createServiceCoordinator,
  type DetachResult,
  describeRefusal,
  type EnsureResult,
  type EnsureServiceOptions,
  type ServiceCoordinator,
  type ServiceCoordinatorOptions,
  type ServiceReady,
  type ServiceRefused,
  type SweepResult,
} from './coordinator.ts';
export { isServiceName, serviceNameFor } from './names.ts';
export {
  describeService,
  type Identity,
  olderThan,
  planEnsure,
  planSweep,
  type Refusal,
  type RefusalReason,
  type ServiceShape,
  type ServiceView,
  type ShapeMismatch,
} from './plan.ts';
export {
  CONSUMER_COUNT_ANNOTATION,
  type Consumer,
  LAST_UPDATED_ANNOTATION,
  OWNER_OPERATOR_ANNOTATION,
  OWNER_REFERENCES_ANNOTATION,
  type OwnerRef,
  REGISTRY_ANNOTATION,
  readOwnerRefs,
  readRegistry,
  SCHEMA_VERSION,
  SCHEMA_VERSION_ANNOTATION,
  type ServiceRegistry,
} from './registry.ts';
export {
  createTailnetCoordinators,
  type TailnetCoordinators,
  type TailnetCoordinatorsOptions,
} from './tailnets.ts';
