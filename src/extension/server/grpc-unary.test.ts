import { describe, expect, test } from 'bun:test';
import { encodeGrpcMessage } from './grpc-unary.ts';

/** The spec's decoder: every %XX is a byte, the bytes are UTF-8. */
const decode = (value: string): string =>
  new TextDecoder().decode(
    Uint8Array.from(
      (value.match(/%[0-9A-F]{2}|[\s\S]/g) ?? []).map((part) =>
        part.length === 3 ? Number.parseInt(part.slice(1), 16) : part.charCodeAt(0),
      ),
    ),
  );

describe('encodeGrpcMessage', () => {
  test('visible ASCII and inner spaces stay as they are, reserved URI characters included', () => {
    const message = 'PostClusterModify: spec.rules[0] (a,b) #3 ?x=1&y=2 /path; "q" ~ @';
    expect(encodeGrpcMessage(message)).toBe(message);
  });

  test('"%" and bytes outside 0x20-0x7E are encoded, UTF-8 first, in upper-case hex', () => {
    expect(encodeGrpcMessage('100%')).toBe('100%25');
    expect(encodeGrpcMessage('café')).toBe('caf%C3%A9');
    expect(encodeGrpcMessage('a\nb\tc\x7f')).toBe('a%0Ab%09c%7F');
    expect(encodeGrpcMessage('🚀')).toBe('%F0%9F%9A%80');
  });

  test('a leading or trailing space is encoded (HTTP/2 field values must not start or end with one)', () => {
    expect(encodeGrpcMessage(' a b ')).toBe('%20a b%20');
  });

  test('the spec decoder gets every message back', () => {
    for (const message of ['', ' ', '%%25', ' x: 100% ≠ café 🚀\r\n ', 'plain']) {
      expect(decode(encodeGrpcMessage(message))).toBe(message);
    }
  });
});
