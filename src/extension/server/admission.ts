/**
 * The process-wide byte budget of large hook calls (see `limits.ts` for why). A call asks for its
 * reservation once its gRPC frame header names the message size; it runs when the reservation fits, or
 * when nothing else holds any (so a call larger than the budget still runs, alone). Waiting calls are
 * served first come, first served, so a stream of smaller large calls cannot starve a bigger one.
 *
 * Pure bookkeeping: no timers, no I/O. The caller pauses the stream while a ticket waits and cancels the
 * ticket when the call ends first (deadline, client gone, shutdown).
 *
 * @module
 */

export interface Ticket {
  /** True once the reservation is held; the call may read its body. */
  readonly granted: boolean;
  /** Bytes this ticket holds (after `grant`) or asks for. */
  readonly bytes: number;
  /** Holds `extra` bytes more, without waiting: an answer that came out larger than reserved. */
  grow(extra: number): void;
  /** Gives the reservation back, or leaves the queue; idempotent. */
  release(): void;
}

export interface Admission {
  /**
   * Asks for `bytes`. The ticket is granted at once when it fits and nobody waits; otherwise `onGrant`
   * runs later, once it is.
   */
  request(bytes: number, onGrant: () => void): Ticket;
  /** Bytes held by granted tickets. */
  readonly heldBytes: number;
  /** Tickets waiting. */
  readonly waiting: number;
}

export function createAdmission(options: {
  budgetBytes: number;
  /** Called after every change of `heldBytes` or `waiting`, for the gauges. */
  onChange?: (state: { heldBytes: number; waiting: number }) => void;
}): Admission {
  const { budgetBytes, onChange } = options;
  let held = 0;
  let holders = 0;
  const queue: (() => boolean)[] = [];
  const changed = () => onChange?.({ heldBytes: held, waiting: queue.length });

  /**
   * Grants queued tickets in order while the head fits; each entry returns false if it did not. A
   * grant's callback may release tickets itself (and so drain again): the head is only removed if it is
   * still the head.
   */
  const drain = () => {
    while (queue.length > 0) {
      const head = queue[0]!;
      if (!head()) break;
      if (queue[0] === head) queue.shift();
    }
    changed();
  };

  return {
    get heldBytes() {
      return held;
    },
    get waiting() {
      return queue.length;
    },
    request(bytes, onGrant) {
      let state: 'waiting' | 'granted' | 'released' = 'waiting';
      let holding = 0;
      const fits = () => holders === 0 || held + bytes <= budgetBytes;
      const grant = () => {
        state = 'granted';
        holding = bytes;
        held += bytes;
        holders++;
      };
      const tryGrant = (): boolean => {
        if (state === 'released') return true; // left the queue; drop it
        if (!fits()) return false;
        grant();
        onGrant();
        return true;
      };
      const ticket: Ticket = {
        get granted() {
          return state === 'granted';
        },
        get bytes() {
          return state === 'granted' ? holding : bytes;
        },
        grow(extra) {
          if (state !== 'granted' || extra <= 0) return;
          holding += extra;
          held += extra;
          changed();
        },
        release() {
          if (state === 'released') return;
          const wasGranted = state === 'granted';
          state = 'released';
          if (wasGranted) {
            held -= holding;
            holders--;
            holding = 0;
          } else {
            const index = queue.indexOf(tryGrant);
            if (index >= 0) queue.splice(index, 1);
          }
          drain();
        },
      };
      // Nobody jumps the queue: a call that would fit still waits behind earlier waiting ones.
      if (queue.length === 0 && fits()) {
        grant();
        changed();
      } else {
        queue.push(tryGrant);
        changed();
      }
      return ticket;
    },
  };
}

/**
 * Runs the CPU-bound step of large calls (decode, hook, encode: milliseconds each for a 10k-cluster
 * PostTranslateModify) one per event-loop turn, in arrival order. Between two such steps the loop
 * polls its sockets, so a small call that arrived meanwhile waits for at most one large step, however
 * many large calls are in flight. A worker thread would move the step off the loop altogether, but the
 * hooks read the resource store of this thread, and on a node with a core or two a worker only moves
 * the contention.
 */
export function createTurnQueue(): (step: () => void) => void {
  const steps: (() => void)[] = [];
  let scheduled = false;
  const runOne = () => {
    const step = steps.shift();
    try {
      step?.();
    } finally {
      // Scheduled after the step, so whatever became ready during it (a small call's socket read)
      // runs before the next large step.
      if (steps.length > 0) setImmediate(runOne);
      else scheduled = false;
    }
  };
  return (step) => {
    steps.push(step);
    if (!scheduled) {
      scheduled = true;
      setImmediate(runOne);
    }
  };
}
