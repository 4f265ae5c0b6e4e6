/**
 * The Kubernetes client the operator uses: client-node's typed APIs wired to the Bun-safe transport,
 * the Bun-safe watch, and a server-side-apply helper for objects of any kind.
 *
 * Build it once per process and share it; the transport caches TLS material and discovery results.
 *
 * @module
 */

import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  createConfiguration,
  EventsV1Api,
  type KubeConfig,
  type KubernetesObject,
  ServerConfiguration,
} from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import {
  createHttpLibrary,
  KubeTransport,
  type RawRequestInit,
  type TransportOptions,
} from './http-library.ts';
import { type LoadKubeConfigOptions, loadKubeConfig } from './kube-config.ts';
import {
  type ApiResource,
  findResource,
  type GroupVersion,
  groupVersionPath,
  parseApiVersion,
  resourcePath,
} from './resource-path.ts';
import { BunWatch, type BunWatchOptions } from './watch.ts';

export const DEFAULT_FIELD_MANAGER = 'tailscale-gateway';
export const APPLY_PATCH_CONTENT_TYPE = 'application/apply-patch+yaml';

export interface KubeClientOptions extends LoadKubeConfigOptions, TransportOptions, BunWatchOptions {
  /** An already loaded configuration; when given, the kubeconfig lookup options are ignored. */
  kubeConfig?: KubeConfig;
}

export interface ApplyOptions {
  fieldManager?: string;
  /** Take ownership of fields other managers own; only for objects the operator owns outright. */
  force?: boolean;
  dryRun?: boolean;
  /** For example `status`; the object's own path plus `/status`. */
  subresource?: string;
  signal?: AbortSignal;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  subresource?: string;
}

export interface KubeClient {
  kubeConfig: KubeConfig;
  /** The API server base URL, without a trailing slash. */
  server: string;
  transport: KubeTransport;
  core: CoreV1Api;
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  apiextensions: ApiextensionsV1Api;
  coordination: CoordinationV1Api;
  events: EventsV1Api;
  /** Pass to client-node's `ListWatch` / `makeInformer` in place of `new Watch(kc)`. */
  watch: BunWatch;
  /**
   * Server-side apply of any object; returns the object as stored. Typed writes without a `fieldManager`
   * are recorded under the User-Agent's name (`tailscale-gateway`) as an Update, which apply treats as a
   * different owner: fields the operator applies must not also be written with typed calls.
   */
  applyObject<T extends KubernetesObject>(obj: T, options?: ApplyOptions): Promise<T>;
  /** The REST path of an object (or its collection when `name` is empty), resolved by discovery. */
  pathFor(ref: Omit<ObjectRef, 'name'> & { name?: string }): Promise<string>;
  /** A raw call with auth and TLS; JSON in, JSON out, `OperatorError` for non-2xx. */
  request<T = unknown>(path: string, init?: RawRequestInit): Promise<T>;
}

export function createKubeClient(options: KubeClientOptions = {}): KubeClient {
  const kubeConfig = options.kubeConfig ?? loadKubeConfig(options);
  const transport = new KubeTransport(kubeConfig, options);
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(transport.server, {}),
    authMethods: { default: transport.securityAuthentication() },
    httpApi: createHttpLibrary(transport),
  });
  const discovery = new Discovery(transport);

  const pathFor: KubeClient['pathFor'] = async (ref) => {
    const gv = parseApiVersion(ref.apiVersion);
    const resource = await discovery.resource(gv, ref.kind);
    return resourcePath({
      ...gv,
      plural: resource.name,
      namespaced: resource.namespaced,
      ...(ref.namespace ? { namespace: ref.namespace } : {}),
      ...(ref.name ? { name: ref.name } : {}),
      ...(ref.subresource ? { subresource: ref.subresource } : {}),
    });
  };

  const applyObject = async <T extends KubernetesObject>(obj: T, apply: ApplyOptions = {}): Promise<T> => {
    const { apiVersion, kind, metadata } = obj;
    if (!apiVersion || !kind || !metadata?.name) {
      throw new OperatorError('Invalid', 'server-side apply needs apiVersion, kind and metadata.name');
    }
    const path = await pathFor({
      apiVersion,
      kind,
      name: metadata.name,
      ...(metadata.namespace ? { namespace: metadata.namespace } : {}),
      ...(apply.subresource ? { subresource: apply.subresource } : {}),
    });
    return await transport.request<T>(path, {
      method: 'PATCH',
      body: obj,
      contentType: APPLY_PATCH_CONTENT_TYPE,
      query: {
        fieldManager: apply.fieldManager ?? DEFAULT_FIELD_MANAGER,
        force: apply.force ? true : undefined,
        dryRun: apply.dryRun ? 'All' : undefined,
      },
      ...(apply.signal ? { signal: apply.signal } : {}),
    });
  };

  return {
    kubeConfig,
    server: transport.server,
    transport,
    core: new CoreV1Api(configuration),
    apps: new AppsV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    apiextensions: new ApiextensionsV1Api(configuration),
    coordination: new CoordinationV1Api(configuration),
    events: new EventsV1Api(configuration),
    watch: new BunWatch(transport, options),
    applyObject,
    pathFor,
    request: (path, init) => transport.request(path, init),
  };
}

/**
 * Discovery per group-version, cached for the life of the client. A kind missing from a cached list
 * triggers one refresh, because a CRD installed after the first lookup is otherwise invisible.
 */
class Discovery {
  private readonly cache = new Map<string, Promise<ApiResource[]>>();

  constructor(private readonly transport: KubeTransport) {}

  async resource(gv: GroupVersion, kind: string): Promise<ApiResource> {
    const found =
      findResource(await this.list(gv, false), kind) ?? findResource(await this.list(gv, true), kind);
    if (!found) {
      throw new OperatorError(
        'NotFound',
        `the API server does not serve kind ${kind} in ${groupVersionPath(gv)}`,
      );
    }
    return found;
  }

  private list(gv: GroupVersion, refresh: boolean): Promise<ApiResource[]> {
    const key = groupVersionPath(gv);
    let entry = refresh ? undefined : this.cache.get(key);
    if (!entry) {
      entry = this.transport
        .request<{ resources?: ApiResource[] }>(key)
        .then((list) => list.resources ?? [])
        .catch((error: unknown) => {
          this.cache.delete(key);
          // A group-version nobody serves answers 404; report it as the kind being unknown.
          if (error instanceof OperatorError && error.code === 'NotFound') return [];
          throw error;
        });
      this.cache.set(key, entry);
    }
    return entry;
  }
}
