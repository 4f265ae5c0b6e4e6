/**
 * Parsing of `host:port` listen addresses.
 *
 * The operator takes its listen addresses (metrics/health HTTP, extension gRPC) as one string each, in the
 * Go `net.Listen` form the Kubernetes ecosystem already uses (`:8080`, `0.0.0.0:8081`, `[::]:5005`), so a
 * manifest written for a Go operator reads the same here. Parsing happens once at start-up and fails with
 * an `Invalid` error naming the field and the problem, so a typo stops the process instead of silently
 * binding somewhere unexpected.
 *
 * @module
 */

import { OperatorError } from '../errors.ts';

/** A parsed listen address, ready for `Bun.serve({ hostname, port })` or `server.listen(port, host)`. */
export interface ListenAddress {
  /** Host name or IP literal, without brackets (`::` not `[::]`). */
  host: string;
  /** TCP port; 0 asks the kernel for an ephemeral port (tests). */
  port: number;
}

export interface ParseListenAddressOptions {
  /** Config field the string came from, named in the error and set as its `field`. Default: none. */
  field?: string;
  /**
   * Host used for the Go-style `:port` form. Default `'0.0.0.0'`, because Bun's own default listen host
   * is IPv4-any and pods rarely have IPv6-only networking; pass `'::'` for dual-stack.
   */
  defaultHost?: string;
}

/**
 * Parses `host:port`, `:port` or `[ipv6]:port`.
 *
 * @throws {OperatorError} code `Invalid` when the port is missing, not a decimal integer in 0–65535, the
 *   host contains whitespace or URL syntax, or an IPv6 literal is not bracketed (`::1:80` is ambiguous).
 * @example
 * parseListenAddress(':8080');      // { host: '0.0.0.0', port: 8080 }
 * parseListenAddress('[::]:5005');  // { host: '::', port: 5005 }
 */
export function parseListenAddress(input: string, options: ParseListenAddressOptions = {}): ListenAddress {
  const { field, defaultHost = '0.0.0.0' } = options;
  const fail = (problem: string): never => {
    const where = field ?? 'listen address';
    throw new OperatorError('Invalid', `${where} ${JSON.stringify(input)}: ${problem}`, { field });
  };

  if (typeof input !== 'string' || input.length === 0) return fail('is empty; expected host:port');
  if (/\s/.test(input)) return fail('must not contain whitespace');
  if (input.includes('://')) return fail('must be host:port, not a URL');

  let host: string;
  let portText: string;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close === -1) return fail('has "[" without a closing "]"');
    host = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (!rest.startsWith(':')) return fail('is missing ":port" after the bracketed IPv6 address');
    portText = rest.slice(1);
    if (!host.includes(':')) return fail('brackets are only for IPv6 literals');
  } else {
    const colon = input.lastIndexOf(':');
    if (colon === -1) return fail('is missing ":port"');
    host = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (host.includes(':')) return fail('IPv6 addresses must be bracketed, e.g. [::1]:8080');
    if (host.length === 0) host = defaultHost;
  }

  if (host.length === 0) return fail('host is empty');
  if (/[/?#@[\]]/.test(host)) return fail('host must be a bare name or IP, not a URL');
  if (portText.length === 0) return fail('port is empty');
  if (!/^\d{1,5}$/.test(portText)) return fail(`port ${JSON.stringify(portText)} is not a decimal number`);
  const port = Number(portText);
  if (port > 65535) return fail(`port ${port} is out of range 0-65535`);
  return { host, port };
}

/**
 * Formats a host and port for a URL authority, bracketing IPv6 literals. Wildcard hosts are kept as
 * given; callers that need a dialable URL should substitute a loopback address themselves.
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
