import { describe, expect, test } from 'bun:test';
import { mergeService } from './client.ts';

describe('mergeService', () => {
  const current = {
    name: 'svc:web',
    addrs: ['100.100.0.1', 'fd7a:115c:a1e0::1'],
    comment: 'old',
    ports: ['tcp:80'],
    tags: ['tag:k8s'],
    annotations: { a: '1' },
    displayName: 'Web',
  };

  test('keeps current addrs and unmodelled fields; defined spec fields win', () => {
    expect(mergeService(current, { name: 'svc:web', ports: ['tcp:443'], annotations: {} })).toEqual({
      ...current,
      ports: ['tcp:443'],
      annotations: {},
    });
  });

  test('an empty addrs list keeps the current addresses', () => {
    expect(mergeService(current, { name: 'svc:web', addrs: [] }).addrs).toEqual(current.addrs);
  });

  test('explicit addrs are sent', () => {
    expect(mergeService(current, { name: 'svc:web', addrs: ['100.100.0.9'] }).addrs).toEqual(['100.100.0.9']);
  });

  test('on create, no addrs unless asked for', () => {
    expect(mergeService(null, { name: 'svc:new', tags: ['tag:k8s'] })).toEqual({
      name: 'svc:new',
      tags: ['tag:k8s'],
    });
    expect(mergeService(null, { name: 'svc:new', addrs: [] })).toEqual({ name: 'svc:new' });
  });
});
