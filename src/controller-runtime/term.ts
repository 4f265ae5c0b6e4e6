/**
 * Leadership terms. The leader builds its controllers anew for each term (a controller runs once) and
 * stops them all when the term ends; each resource's setup adds what it made to the term, and the
 * entry point only begins and ends terms. So the term's state lives here, in one object, not in
 * variables of the entry point that every setup would have to reach.
 *
 * @module
 */
import type { Controller } from './controller.ts';

/** What a resource's setup adds to the term it runs in. */
export interface Term {
  /** Aborts when the term ends or the process stops. */
  readonly signal: AbortSignal;
  /** Controllers to start with the term and to drain when it ends. */
  addControllers(...controllers: Controller[]): void;
  /** Informers made for this term only (their maker starts them); stopped after the controllers. */
  addInformers(...informers: { stop(): Promise<void> }[]): void;
  /**
   * Runs first when the term ends, in the order added, before the controllers drain: watch
   * subscriptions, timers, coordinators.
   */
  onEnd(stop: () => void): void;
}

export interface Terms {
  /** Builds a term with `setup` and starts its controllers; resolves when they have started. */
  begin(signal: AbortSignal): Promise<void>;
  /** Ends the current term, if any: its `onEnd`s, then controllers (drained `drainMs`), then informers. */
  end(drainMs: number): Promise<void>;
}

/** Terms built by `setup`, one at a time. */
export function createTerms(setup: (term: Term) => void): Terms {
  const current = new Set<(drainMs: number) => Promise<void>>();
  return {
    async begin(signal) {
      const controllers: Controller[] = [];
      const informers: { stop(): Promise<void> }[] = [];
      const ends: (() => void)[] = [];
      current.add(async (drainMs) => {
        for (const stop of ends) stop();
        await Promise.all(controllers.map((controller) => controller.stop(drainMs)));
        await Promise.all(informers.map((informer) => informer.stop()));
      });
      setup({
        signal,
        addControllers: (...more) => controllers.push(...more),
        addInformers: (...more) => informers.push(...more),
        onEnd: (stop) => ends.push(stop),
      });
      await Promise.all(controllers.map((controller) => controller.start(signal)));
    },
    async end(drainMs) {
      const ending = [...current];
      current.clear();
      await Promise.all(ending.map((end) => end(drainMs)));
    },
  };
}
