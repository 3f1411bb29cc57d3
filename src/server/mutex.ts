/**
 * A per-key async mutex: callers with the same key run one after another, callers
 * with different keys run concurrently. Used for read-modify-write of repository
 * metadata and for appending to one upload; single writes are already atomic (rename).
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  /** true while a caller holds or waits for `key` */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
