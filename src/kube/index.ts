/**
 * The Bun-safe Kubernetes client: import from here, not from the files.
 *
 * @module
 */

export {
  APPLY_PATCH_CONTENT_TYPE,
  type ApplyOptions,
  createKubeClient,
  DEFAULT_FIELD_MANAGER,
  type KubeClient,
  type KubeClientOptions,
  type ObjectRef,
} from './client.ts';
export {
  type BunTls,
  createHttpLibrary,
  KubeTransport,
  type RawRequestInit,
  readTls,
  type TransportOptions,
} from './http-library.ts';
export {
  createInformer,
  type Informer,
  type InformerEvent,
  type InformerHandlers,
  type InformerOptions,
  type InformerTransport,
  resourceLabel,
} from './informer.ts';
export {
  describeSource,
  type KubeConfigSource,
  type LoadKubeConfigOptions,
  loadKubeConfig,
  resolveKubeConfigSource,
  SERVICE_ACCOUNT_DIR,
} from './kube-config.ts';
export { errorFromResponse, errorFromTransport, type KubeStatus, parseStatus } from './kube-errors.ts';
export {
  createdMs,
  DEFAULT_NAMESPACE,
  type KeyParts,
  keyOf,
  namespaceOf,
  objectKey,
  splitKey,
} from './object-key.ts';
export {
  type CheckingInformer,
  createResourceInformer,
  pluralOf,
  type ResourceInformer,
  resourcePathOf,
  typedInformer,
} from './resource-informer.ts';
export {
  type ApiResource,
  findResource,
  type GroupVersion,
  groupVersionPath,
  parseApiVersion,
  type ResourcePathParts,
  resourcePath,
} from './resource-path.ts';
export { withoutManagedFields } from './trim.ts';
export { BunWatch, type BunWatchOptions, type WatchCallback, type WatchDone } from './watch.ts';
export { kubeWriteObserver, type RequestObserver, resourceOfPath } from './write-metrics.ts';
