/**
 * The ceiling for a pure-JS UDP server: a bare `node:dgram` loop that sends every datagram straight back
 * to its sender, with no parsing at all. Started by `main.ts` as
 * `node dist/bench/binding/echo-server.js <port> [--literal-lookup]` on 127.0.0.1; stopped with SIGTERM.
 *
 * `--literal-lookup` gives the socket a synchronous `lookup` that returns the IP literal it is handed, so
 * `send()` skips the `dns.lookup` round trip (a closure and a `process.nextTick` per datagram) that an
 * unconnected socket otherwise makes. turnpike's UDP listener does the same, so that variant is the
 * like-for-like ceiling; the default is the truly bare loop.
 */
import { createSocket, type SocketOptions } from 'node:dgram';

const port = Number(process.argv[2]);
const literalLookup = process.argv.includes('--literal-lookup');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: echo-server.js <port> [--literal-lookup]\n');
  process.exit(2);
}

const options: SocketOptions = { type: 'udp4' };
if (literalLookup) {
  options.lookup = (hostname, _options, callback) => callback(null, hostname, 4);
}
const socket = createSocket(options);
socket.on('message', (msg, rinfo) => {
  // Same path a real server takes: unconnected socket, address and port from rinfo.
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.on('error', (err) => {
  process.stderr.write(`echo-server: ${err.message}\n`);
  process.exit(1);
});
socket.bind(port, '127.0.0.1');

const stop = (): void => {
  socket.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
