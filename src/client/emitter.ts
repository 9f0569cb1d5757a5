/** A tiny typed event emitter. `on` returns its own unsubscribe function. */

export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners = new Map<keyof E, Set<Listener<never[]>>>();

  /** `onListenerError` gets what a listener throws; by default it is rethrown on a microtask. */
  constructor(private readonly onListenerError: (err: unknown) => void = rethrowLater) {}

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    // A wrapper per registration, so the same function added twice is two listeners.
    const entry: Listener<never[]> = (...args) => (fn as Listener<unknown[]>)(...args);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  once<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    const off = this.on(event, ((...args: E[K]) => {
      off();
      fn(...args);
    }) as Listener<E[K]>);
    return off;
  }

  /**
   * Calls every listener with the arguments. A listener that throws does not stop the others
   * nor the caller; its error goes to `onListenerError` (by default rethrown on a fresh
   * microtask, so it is not swallowed).
   */
  emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<unknown[]>)(...args);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  listenerCount<K extends keyof E>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  removeAll(): void {
    this.listeners.clear();
  }
}

function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}
