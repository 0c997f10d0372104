/** This host's addresses, for defaults that name one (relay addresses, the public host). */
import { networkInterfaces } from 'node:os';

/** Non-internal IPv4 then IPv6 addresses of this host (IPv6 link-local excluded: it needs a scope). */
export function hostAddresses(): string[] {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') v4.push(a.address);
      else if (!a.address.toLowerCase().startsWith('fe80:')) v6.push(a.address);
    }
  }
  return [...v4, ...v6];
}
