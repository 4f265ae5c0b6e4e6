/**
 * The Envoy Gateway extension server: transport, limits, health, metrics and error mapping around the
 * hook logic in `../hooks/`.
 *
 * @module
 */
export { CALL_INFO, type CallInfo, recodeDecodeFailure } from './call-observer.ts';
export {
  createExtensionServer,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_TLS_RELOAD_MS,
  type ExtensionServer,
  type ExtensionServerOptions,
} from './extension-server.ts';
export { ServingStatus } from './health-service.ts';
export { EXTENSION_SERVICE_NAME, hookError } from './hook-service.ts';
export type { TlsFiles } from './tls-files.ts';
