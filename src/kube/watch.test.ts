import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { KubeConfig } from '@kubernetes/client-node';
import { OperatorError } from '../errors.ts';
import { KubeTransport } from './http-library.ts';
import { BunWatch } from './watch.ts';

/** A plain-HTTP fake that scripts the watch stream per path, to pin down framing, timeouts and `done`. */
let server: ReturnType<typeof Bun.serve>;
const seenQueries: URLSearchParams[] = [];
const encoder = new TextEncoder();
const event = (type: string, name: string) =>
  `${JSON.stringify({ type, object: { metadata: { name, resourceVersion: '1' } } })}\n`;

beforeAll(() => {
  server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(request) {
      const url = new URL(request.url);
      seenQueries.push(url.searchParams);
      const stream = (parts: (string | number)[], close = true) =>
        new Response(
          new ReadableStream({
            async start(controller) {
              for (const part of parts) {
                if (typeof part === 'number') await Bun.sleep(part);
                else controller.enqueue(encoder.encode(part));
              }
              if (close) controller.close();
            },
          }),
        );
      switch (url.pathname) {
        case '/split': {
          // One event split mid-JSON across chunks, two in one chunk, no trailing newline on the last.
          const a = event('ADDED', 'a');
          const both = event('MODIFIED', 'a') + event('ADDED', 'b');
          return stream([a.slice(0, 10), 5, a.slice(10), both, event('DELETED', 'a').trimEnd()]);
        }
        case '/quiet':
          return stream([event('ADDED', 'a'), 10_000], false);
        case '/malformed':
          return stream([event('ADDED', 'a'), '{not json\n', event('ADDED', 'b')]);
        case '/gone':
          return Response.json(
            { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 1 (5)' },
            { status: 410 },
          );
        default:
          return stream([event('ADDED', 'a'), 60_000], false);
      }
    },
  });
});
afterAll(() => server.stop(true));

function makeWatch(inactivityTimeoutMs = 2_000): BunWatch {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'fake', server: `http://127.0.0.1:${server.port}`, skipTLSVerify: false },
    { name: 'u', token: 'secret-token' },
  );
  return new BunWatch(new KubeTransport(kc), { inactivityTimeoutMs });
}

function run(
  watch: BunWatch,
  path: string,
  onEvent?: (type: string, obj: { metadata: { name: string } }) => void,
) {
  const events: string[] = [];
  const dones: unknown[] = [];
  let resolveDone!: (err: unknown) => void;
  const finished = new Promise<unknown>((resolve) => {
    resolveDone = resolve;
  });
  const controller = watch.watch(
    path,
    { resourceVersion: '7', labelSelector: undefined },
    (type, obj) => {
      events.push(`${type}:${obj.metadata.name}`);
      onEvent?.(type, obj);
    },
    (err) => {
      dones.push(err);
      resolveDone(err);
    },
  );
  return { events, dones, finished, controller };
}

describe('BunWatch', () => {
  test('frames events across chunk boundaries and calls done(null) once at the end', async () => {
    const { events, dones, finished } = run(makeWatch(), '/split');
    expect(await finished).toBeNull();
    await Bun.sleep(20);
    expect(events).toEqual(['ADDED:a', 'MODIFIED:a', 'ADDED:b', 'DELETED:a']);
    expect(dones).toHaveLength(1);
  });

  test('sends watch=true, allowWatchBookmarks=true and the caller query, skipping undefined', async () => {
    seenQueries.length = 0;
    await run(makeWatch(), '/split').finished;
    const query = seenQueries[0]!;
    expect(query.get('watch')).toBe('true');
    expect(query.get('allowWatchBookmarks')).toBe('true');
    expect(query.get('resourceVersion')).toBe('7');
    expect(query.has('labelSelector')).toBe(false);
  });

  test('inactivity ends the watch with a TimeoutError, as ListWatch expects', async () => {
    const started = performance.now();
    const { events, finished } = run(makeWatch(200), '/quiet');
    const err = (await finished) as Error;
    expect(err.name).toBe('TimeoutError');
    expect(events).toEqual(['ADDED:a']);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  test('a malformed line ends the watch with an error instead of being skipped', async () => {
    const { events, finished } = run(makeWatch(), '/malformed');
    const err = (await finished) as OperatorError;
    expect(err).toBeInstanceOf(OperatorError);
    expect(err.code).toBe('Internal');
    expect(events).toEqual(['ADDED:a']);
  });

  test('410 carries statusCode for ListWatch and the Status message, not headers or token', async () => {
    const err = (await run(makeWatch(), '/gone').finished) as OperatorError & { statusCode: number };
    expect(err.statusCode).toBe(410);
    expect(err.status).toBe(410);
    expect(err.code).toBe('NotFound');
    expect(err.message).toContain('too old resource version');
    expect(err.message).not.toContain('secret-token');
  });

  test('a caller abort ends with done(null)', async () => {
    const { events, finished, controller } = run(makeWatch(), '/forever');
    while (events.length === 0) await Bun.sleep(5);
    (await controller).abort();
    expect(await finished).toBeNull();
  });

  test('a throwing callback ends the watch with its error', async () => {
    const boom = new Error('handler bug');
    const { finished } = run(makeWatch(), '/forever', () => {
      throw boom;
    });
    expect(await finished).toBe(boom);
  });
});
