/**
 * In-memory control-plane state of the fake: devices, auth keys, Tailscale Services and issued access
 * tokens. Tests seed and inspect it directly; the HTTP layer is the only thing that mutates it otherwise.
 *
 * @module
 */

export interface FakeDevice {
  id: string;
  nodeId: string;
  name: string;
  hostname: string;
  addresses: string[];
  tags: string[];
  authorized: boolean;
  isEphemeral: boolean;
  isExternal: boolean;
  connectedToControl: boolean;
  lastSeen: string;
  created: string;
  os: string;
  clientVersion: string;
  enabledRoutes: string[];
  advertisedRoutes: string[];
}

export interface FakeAuthKey {
  id: string;
  /** The secret, as issued; the fake returns it only from create, like the real API. */
  key: string;
  created: string;
  expires: string;
  invalid: boolean;
  description: string;
  capabilities: {
    devices: { create: { reusable: boolean; ephemeral: boolean; preauthorized: boolean; tags: string[] } };
  };
}

export interface FakeService {
  name: string;
  addrs: string[];
  comment?: string;
  annotations?: Record<string, string>;
  ports?: string[];
  tags?: string[];
  [field: string]: unknown;
}

export interface IssuedToken {
  clientId: string;
  expiresAt: number;
}

export interface FakeState {
  /** Keyed by legacy `id`; `nodeId` lookups scan. */
  devices: Map<string, FakeDevice>;
  keys: Map<string, FakeAuthKey>;
  services: Map<string, FakeService>;
  tokens: Map<string, IssuedToken>;
  /** Adds a device with plausible defaults for everything not given. */
  seedDevice(partial?: Partial<FakeDevice>): FakeDevice;
  /** Next unused Tailscale Service addresses (one IPv4, one IPv6). */
  allocateServiceAddrs(): string[];
  findDevice(id: string): FakeDevice | undefined;
}

export function createFakeState(now: () => number): FakeState {
  let deviceCounter = 0;
  let addrCounter = 0;
  const devices = new Map<string, FakeDevice>();
  return {
    devices,
    keys: new Map(),
    services: new Map(),
    tokens: new Map(),
    seedDevice(partial = {}) {
      deviceCounter += 1;
      const n = deviceCounter;
      const hostname = partial.hostname ?? `device-${n}`;
      const device: FakeDevice = {
        id: String(1000 + n),
        nodeId: `n${n}FAKECNTRL`,
        name: `${hostname}.tail-fake.ts.net`,
        hostname,
        // Valid addresses past 255 devices too: 100.64.0.n as before, then 100.64.1.0 and on.
        addresses: [`100.64.${Math.floor(n / 256)}.${n % 256}`, `fd7a:115c:a1e0::${n.toString(16)}`],
        tags: ['tag:k8s'],
        authorized: true,
        isEphemeral: false,
        isExternal: false,
        connectedToControl: true,
        lastSeen: new Date(now()).toISOString(),
        created: new Date(now()).toISOString(),
        os: 'linux',
        clientVersion: '1.90.0',
        enabledRoutes: [],
        advertisedRoutes: [],
        ...partial,
      };
      devices.set(device.id, device);
      return device;
    },
    allocateServiceAddrs() {
      addrCounter += 1;
      return [
        `100.100.${Math.floor(addrCounter / 250)}.${(addrCounter % 250) + 1}`,
        `fd7a:115c:a1e0:ab12::${addrCounter.toString(16)}`,
      ];
    },
    findDevice(id) {
      return devices.get(id) ?? [...devices.values()].find((d) => d.nodeId === id);
    },
  };
}
