/** UDP sockets of the load engine and the forwarder: creating, binding, connecting, sizing. */
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

/** Binds `socket` to `address:port` (0: any free port), exclusively; rejects with the bind error. */
export function bindSocket(socket: Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

/** Connects `socket` to `address:port`, so send() needs no destination; rejects with the error. */
export function connectSocket(socket: Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}
