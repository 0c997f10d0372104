/** The probe's report as text for a terminal (`--json` prints the ProbeReport itself). */
import type { ProbeReport } from './probe.js';

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

export function formatReport(r: ProbeReport): string {
  const lines: string[] = [];
  const target =
    r.server.address === undefined || r.server.address === r.server.host
      ? ''
      : ` (${r.server.host} is ${r.server.address})`;
  lines.push(`turnpike probe ${r.uri}${target}`);
  if (r.username !== undefined) lines.push(`  user name ${r.username}`);
  for (const s of r.steps) {
    const rtt = s.rttMs === undefined ? '' : `${s.rttMs.toFixed(1)} ms`;
    lines.push(`  ${s.ok ? 'PASS' : 'FAIL'}  ${pad(s.name, 13)}${pad(rtt, 11)}${s.detail}`);
    if (!s.ok && s.problem !== undefined) lines.push(`        problem: ${s.problem}`);
    if (!s.ok && s.hint !== undefined) lines.push(`        hint: ${s.hint}`);
  }
  lines.push('');
  if (r.mappedAddress !== undefined) lines.push(`mapped address: ${r.mappedAddress}`);
  if (r.relayedAddresses.length > 0) lines.push(`relay address:  ${r.relayedAddresses.join(', ')}`);
  if (r.peerAddress !== undefined) lines.push(`peer address:   ${r.peerAddress}`);
  if (r.ok) {
    lines.push(`result: OK, every step passed (${r.elapsedMs.toFixed(0)} ms)`);
  } else {
    lines.push(`result: FAILED (${r.problems.length} problem${r.problems.length === 1 ? '' : 's'})`);
    for (const p of r.problems) lines.push(`  - ${p}`);
  }
  return lines.join('\n') + '\n';
}
