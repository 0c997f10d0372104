/**
 * The per-IP cap of unauthenticated stream connections: per source IP, the connections that hold
 * no allocation, oldest first (a Set iterates in insertion order: the oldest is
 * `values().next()`), so adding, removing and evicting are O(1). An IP's entry is deleted with its
 * last connection, so the map never holds more IPs than there are connections, nor a set more
 * than `cap` of them.
 */
export class PerIpCap<C> {
  private readonly byIp = new Map<string, Set<C>>();

  /** Connections of `ip` counted now. */
  count(ip: string): number {
    return this.byIp.get(ip)?.size ?? 0;
  }

  /** Source IPs with at least one counted connection. */
  get ipCount(): number {
    return this.byIp.size;
  }

  /**
   * Counts `conn` as the newest of `ip`. With `cap` > 0 and the IP at its cap, the oldest is taken
   * out first and returned: the caller closes it.
   */
  add(ip: string, conn: C, cap: number): C | undefined {
    let set = this.byIp.get(ip);
    let evicted: C | undefined;
    if (cap > 0 && set !== undefined && set.size >= cap) {
      evicted = set.values().next().value;
      if (evicted !== undefined) set.delete(evicted);
    }
    if (set === undefined) {
      set = new Set();
      this.byIp.set(ip, set);
    }
    set.add(conn);
    return evicted;
  }

  /** Stops counting `conn` (it allocated, or closed). */
  delete(ip: string, conn: C): void {
    const set = this.byIp.get(ip);
    if (set === undefined) return;
    set.delete(conn);
    if (set.size === 0) this.byIp.delete(ip);
  }
}
