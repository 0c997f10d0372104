/** UDP sockets of the load engine and the forwarder. */
import { createSocket, type Socket } from 'node:dgram';

/** A synchronous lookup for IP literals: send() then skips dns.lookup (a tick and a closure). */
function literalLookup(
  hostname: string,
  _options: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, hostname, hostname.includes(':') ? 6 : 4);
}

/** An unbound UDP socket of `address`'s family that sends to IP literals without dns.lookup. */
export function literalSocket(address: string): Socket {
  return createSocket({ type: address.includes(':') ? 'udp6' : 'udp4', lookup: literalLookup });
}
