/**
 * Indexes of live allocations: by client 5-tuple (endpoint → client IP → client port), and counts
 * per user for quotas. The 5-tuple index is a two-level Map keyed first by the IP string Node
 * already allocated for the datagram, then by the numeric port, so a lookup allocates nothing.
 */
import type { Allocation, ClientEndpoint } from './allocation.js';

export class AllocationTable {
  private readonly byEndpoint = new Map<ClientEndpoint, Map<string, Map<number, Allocation>>>();
  private readonly perUser = new Map<string, number>();
  /** Allocations per client IP (any transport): a source holding one is not spoofed. */
  private readonly perClientIp = new Map<string, number>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  find(endpoint: ClientEndpoint, address: string, port: number): Allocation | undefined {
    return this.byEndpoint.get(endpoint)?.get(address)?.get(port);
  }

  userCount(userId: string): number {
    return this.perUser.get(userId) ?? 0;
  }

  /** Whether a client at `address` holds an allocation (pending ones included). */
  hasClientAddress(address: string): boolean {
    return this.perClientIp.has(address);
  }

  add(a: Allocation): void {
    let ips = this.byEndpoint.get(a.endpoint);
    if (ips === undefined) {
      ips = new Map();
      this.byEndpoint.set(a.endpoint, ips);
    }
    let ports = ips.get(a.clientAddress);
    if (ports === undefined) {
      ports = new Map();
      ips.set(a.clientAddress, ports);
    }
    ports.set(a.clientPort, a);
    this.perUser.set(a.userId, (this.perUser.get(a.userId) ?? 0) + 1);
    this.perClientIp.set(a.clientAddress, (this.perClientIp.get(a.clientAddress) ?? 0) + 1);
    this.count++;
  }

  remove(a: Allocation): void {
    const ips = this.byEndpoint.get(a.endpoint);
    const ports = ips?.get(a.clientAddress);
    if (ports?.get(a.clientPort) !== a) return;
    ports.delete(a.clientPort);
    if (ports.size === 0) ips!.delete(a.clientAddress);
    if (ips!.size === 0) this.byEndpoint.delete(a.endpoint);
    const n = (this.perUser.get(a.userId) ?? 1) - 1;
    if (n <= 0) this.perUser.delete(a.userId);
    else this.perUser.set(a.userId, n);
    const m = (this.perClientIp.get(a.clientAddress) ?? 1) - 1;
    if (m <= 0) this.perClientIp.delete(a.clientAddress);
    else this.perClientIp.set(a.clientAddress, m);
    this.count--;
  }

  /** Every allocation (for the sweep, shutdown and administration). */
  *all(): IterableIterator<Allocation> {
    for (const ips of this.byEndpoint.values()) for (const ports of ips.values()) yield* ports.values();
  }

  /** Allocations of one client endpoint (a closing TCP connection). */
  *ofEndpoint(endpoint: ClientEndpoint): IterableIterator<Allocation> {
    const ips = this.byEndpoint.get(endpoint);
    if (ips === undefined) return;
    for (const ports of ips.values()) yield* ports.values();
  }
}
