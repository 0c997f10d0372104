/**
 * What a socket received, in arrival order, for callers that wait for the next item with a timeout
 * (the probe's relay check, the tests' `nextData`). Waiters are served first come, first served.
 */
export class Inbox<T> {
  private readonly queue: T[] = [];
  private readonly waiters: Array<(item: T | undefined) => void> = [];
  private readonly capacity: number;

  /** `capacity`: items kept while nobody waits; later ones are dropped (a stuck reader costs nothing). */
  constructor(capacity = Number.POSITIVE_INFINITY) {
    this.capacity = capacity;
  }

  /** Someone is waiting for the next item. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Items queued and not taken yet. */
  get size(): number {
    return this.queue.length;
  }

  /** Hands `item` to the first waiter, or queues it. */
  push(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(item);
    else if (this.queue.length < this.capacity) this.queue.push(item);
  }

  /** The next item (queued ones first), or undefined after `timeoutMs`. */
  next(timeoutMs: number): Promise<T | undefined> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      const waiter = (item: T | undefined): void => {
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Every item arriving within `ms`, after those already queued. */
  async collect(ms: number): Promise<T[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.queue.splice(0);
  }

  /** Forgets queued items. */
  clear(): void {
    this.queue.length = 0;
  }

  /** Ends every wait with undefined (the socket closed). */
  close(): void {
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }
}
