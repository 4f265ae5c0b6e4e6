/**
 * The Tailscale control-plane surface the operator uses, as an interface, so reconciler tests can swap
 * in an in-memory fake (the official operator tests the same way, against its `tsclient.Client`)
 * while this package's own tests run the real client against a fake server.
 *
 * @module
 */

import type { ErrorCode } from '../errors.ts';

/** Every call accepts a signal; aborting it ends waits and requests with a `Canceled` error. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** What an auth key lets a device do when it joins. */
export interface AuthKeyRequest {
  /**
   * Tags the joining device gets. Required and non-empty: keys minted with an OAuth token are owned by
   * the tailnet and must be tagged with tags the OAuth client owns.
   */
  tags: string[];
  /** Device joins without admin approval. Default false (the API's default). */
  preauthorized?: boolean;
  /** Device is removed when it goes offline. Default false. */
  ephemeral?: boolean;
  /** Key can join more than one device. Default false. */
  reusable?: boolean;
  /** Key lifetime in seconds. Default: the API's (90 days). */
  expirySeconds?: number;
  /** Shown in the admin console; at most 50 letters, digits, spaces and hyphens. */
  description?: string;
}

export interface AuthKeyInfo {
  id: string;
  created?: string;
  expires?: string;
  revoked?: string;
  invalid?: boolean;
  description?: string;
  capabilities?: {
    devices?: {
      create?: { reusable?: boolean; ephemeral?: boolean; preauthorized?: boolean; tags?: string[] };
    };
  };
}

/** A created key. `key` is the secret and is returned only this once: store it, never log it. */
export interface CreatedAuthKey extends AuthKeyInfo {
  key: string;
}

export interface Device {
  /** Legacy numeric id. */
  id: string;
  /** Stable node id (`n…CNTRL`); what proxies write to their state Secret and what delete accepts. */
  nodeId: string;
  /** MagicDNS name. */
  name: string;
  hostname: string;
  addresses: string[];
  tags: string[];
  authorized?: boolean;
  isEphemeral?: boolean;
  connectedToControl?: boolean;
  lastSeen?: string;
  /** When the device joined the tailnet. */
  created?: string;
  /** Operating system as the API reports it (`linux`, `windows`, `macOS`, …). */
  os?: string;
  /** Only with `fields: 'all'`. */
  enabledRoutes?: string[];
  /** Only with `fields: 'all'`. */
  advertisedRoutes?: string[];
}

export interface DeviceQuery extends CallOptions {
  /** `all` adds routes and connectivity details. Default: the API's (`default`). */
  fields?: 'all' | 'default';
  /** Server-side filters, e.g. `{ tags: 'tag:k8s' }`; arrays repeat the key. */
  filter?: Record<string, string | string[]>;
}

/** A Tailscale Service as the API returns it. Unmodelled fields are kept (see `put`). */
export interface TailscaleService {
  /** `svc:` + DNS label. */
  name: string;
  /** IPv4 first, then IPv6; allocated by the control plane on create. */
  addrs?: string[];
  comment?: string;
  annotations?: Record<string, string>;
  /** `tcp:<port>` entries, or `do-not-validate`. */
  ports?: string[];
  tags?: string[];
  [field: string]: unknown;
}

/** Desired state for `services.put`. Fields left undefined keep their current values. */
export interface TailscaleServiceSpec {
  name: string;
  /** Leave undefined to keep the current addresses (or have them allocated on create). */
  addrs?: string[];
  comment?: string;
  annotations?: Record<string, string>;
  ports?: string[];
  tags?: string[];
}

export interface ServicePutOptions extends CallOptions {
  /**
   * The service as last read, to save the `GET` that `put` otherwise does first; `null` means "known
   * not to exist". Pass only something read moments ago: it is the base the new state is built on.
   */
  current?: TailscaleService | null;
}

export type ScopeStatus = 'ok' | 'denied' | 'error';

export interface ScopeCheck {
  status: ScopeStatus;
  /** Why it was not ok (the API's message), for a status condition. */
  message?: string;
  code?: ErrorCode;
}

/** One check per OAuth scope the operator needs (`devices:core`, `auth_keys`, `services`). */
export interface ScopeProbe {
  devices: ScopeCheck;
  authKeys: ScopeCheck;
  services: ScopeCheck;
}

export interface TailscaleApi {
  readonly baseUrl: string;
  readonly tailnet: string;
  readonly keys: {
    create(request: AuthKeyRequest, options?: CallOptions): Promise<CreatedAuthKey>;
    get(id: string, options?: CallOptions): Promise<AuthKeyInfo>;
    list(options?: CallOptions): Promise<AuthKeyInfo[]>;
    /** Succeeds when the key is already gone. */
    delete(id: string, options?: CallOptions): Promise<void>;
  };
  readonly devices: {
    list(query?: DeviceQuery): Promise<Device[]>;
    get(id: string, query?: Omit<DeviceQuery, 'filter'>): Promise<Device>;
    /** Succeeds when the device is already gone. */
    delete(id: string, options?: CallOptions): Promise<void>;
  };
  readonly services: {
    list(options?: CallOptions): Promise<TailscaleService[]>;
    /** @throws `NotFound` when absent. */
    get(name: string, options?: CallOptions): Promise<TailscaleService>;
    /** Creates or replaces, keeping current `addrs` and unmodelled fields (read-modify-write). */
    put(spec: TailscaleServiceSpec, options?: ServicePutOptions): Promise<void>;
    /** Succeeds when the service is already gone. */
    delete(name: string, options?: CallOptions): Promise<void>;
  };
  /** Cheap reads, one per scope, classifying 403 as `denied`; never throws. */
  probeScopes(options?: CallOptions): Promise<ScopeProbe>;
}
