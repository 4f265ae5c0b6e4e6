import { describe, expect, test } from 'bun:test';
import { createAdmission, createTurnQueue } from './admission.ts';

describe('admission', () => {
  test('grants while the budget holds, then queues first come, first served', () => {
    const admission = createAdmission({ budgetBytes: 10 });
    const order: string[] = [];
    const a = admission.request(6, () => order.push('a'));
    const b = admission.request(6, () => order.push('b'));
    const c = admission.request(2, () => order.push('c'));
    expect([a.granted, b.granted, c.granted]).toEqual([true, false, false]);
    // c would fit, but does not jump the queue ahead of b.
    expect(admission.heldBytes).toBe(6);
    expect(admission.waiting).toBe(2);
    a.release();
    expect(order).toEqual(['b', 'c']);
    expect(admission.heldBytes).toBe(8);
    expect(admission.waiting).toBe(0);
  });

  test('a request larger than the whole budget runs alone', () => {
    const admission = createAdmission({ budgetBytes: 10 });
    const small = admission.request(4, () => {});
    let bigGranted = false;
    const big = admission.request(50, () => {
      bigGranted = true;
    });
    expect(big.granted).toBe(false);
    small.release();
    expect(bigGranted).toBe(true);
    const next = admission.request(1, () => {});
    expect(next.granted).toBe(false);
    big.release();
    expect(next.granted).toBe(true);
  });

  test('a waiting ticket that is released leaves the queue; release is idempotent', () => {
    const changes: number[] = [];
    const admission = createAdmission({ budgetBytes: 10, onChange: (s) => changes.push(s.waiting) });
    const a = admission.request(10, () => {});
    const b = admission.request(5, () => {
      throw new Error('b left the queue and must not be granted');
    });
    b.release();
    b.release();
    expect(admission.waiting).toBe(0);
    a.release();
    a.release();
    expect(admission.heldBytes).toBe(0);
    expect(changes.at(-1)).toBe(0);
  });

  test('a grant callback that releases its own ticket leaves the queue consistent', () => {
    const admission = createAdmission({ budgetBytes: 10 });
    const a = admission.request(10, () => {});
    const granted: string[] = [];
    const b: { release(): void }[] = [];
    b.push(
      admission.request(10, () => {
        granted.push('b');
        b[0]!.release();
      }),
    );
    admission.request(10, () => granted.push('c'));
    a.release();
    expect(granted).toEqual(['b', 'c']);
    expect(admission.waiting).toBe(0);
    expect(admission.heldBytes).toBe(10);
  });

  test('grow adds to a granted reservation', () => {
    const admission = createAdmission({ budgetBytes: 10 });
    const a = admission.request(4, () => {});
    a.grow(3);
    expect(admission.heldBytes).toBe(7);
    a.release();
    expect(admission.heldBytes).toBe(0);
  });
});

describe('turn queue', () => {
  test('runs one step per event-loop turn, in order, letting other callbacks run between', async () => {
    const run = createTurnQueue();
    const seen: string[] = [];
    run(() => {
      seen.push('large 1');
      // Something that became ready during the step, like a small call's socket read.
      setImmediate(() => seen.push('small'));
    });
    run(() => seen.push('large 2'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual(['large 1', 'small', 'large 2']);
  });
});
