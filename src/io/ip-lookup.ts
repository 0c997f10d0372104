/**
 * A `lookup` for sockets that only ever send to IP literals: it answers synchronously, saving the
 * `dns.lookup` round trip (a closure and a `process.nextTick`) Node otherwise makes per send.
 */
export function ipLiteralLookup(
  hostname: string,
  _options: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, hostname, hostname.includes(':') ? 6 : 4);
}
