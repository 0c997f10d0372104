/**
 * The ICE candidate test page (`GET /test?token=…`, with `test-page` on): what operators use the
 * Trickle ICE sample page for, wired to this server. It fetches its own ICE configuration from
 * `/ice-servers` (sending the token as a bearer header), gathers candidates with an
 * RTCPeerConnection and lists host, srflx and relay candidates, and every icecandidateerror (the
 * browser's word for a TURN server that did not answer or refused the credentials).
 *
 * One static document without dependencies. Everything that comes from outside (candidates, error
 * texts, URLs) is put into the page with `textContent`, never as markup. The inline script and style
 * are allowed by hash in a Content-Security-Policy that allows nothing else but fetches to this
 * origin; no Referer is sent, so the token in the address never leaks through one, and the page
 * removes it from the address bar once read.
 */
import { createHash } from 'node:crypto';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #111; }
h1 { font-size: 1.3em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: left; font-family: ui-monospace, monospace; }
th { background: #f3f3f3; }
.ok { color: #075e07; font-weight: bold; }
.bad { color: #a00; font-weight: bold; }
label { margin-right: 1em; }
`;

/** Plain JavaScript run in the browser (the project's tsconfig has no DOM library). */
const SCRIPT = `
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  // The token stays in this page's memory only.
  history.replaceState(null, '', location.pathname);
  let pc = null;
  let timer = null;

  function cell(row, text) {
    const td = document.createElement('td');
    td.textContent = text === undefined || text === null ? '' : String(text);
    row.appendChild(td);
  }
  function addRow(tableId, values) {
    const row = document.createElement('tr');
    for (const v of values) cell(row, v);
    $(tableId).appendChild(row);
  }
  function clear(tableId) {
    const body = $(tableId);
    while (body.firstChild) body.removeChild(body.firstChild);
  }
  function status(text, state) {
    const s = $('status');
    s.textContent = text;
    s.className = state === 'done-ok' ? 'ok' : state === 'done-bad' ? 'bad' : '';
    s.dataset.state = state;
  }
  // Candidate fields, from the RTCIceCandidate properties or, where a browser lacks them, the SDP line.
  function parse(c) {
    const f = c.candidate.split(' ');
    const typ = f.indexOf('typ');
    const raddr = f.indexOf('raddr');
    const rport = f.indexOf('rport');
    return {
      type: c.type || (typ >= 0 ? f[typ + 1] : ''),
      protocol: c.protocol || f[2] || '',
      address: c.address || f[4] || '',
      port: c.port || f[5] || '',
      related: (c.relatedAddress || (raddr >= 0 ? f[raddr + 1] : '')) +
        ((c.relatedPort || (rport >= 0 ? f[rport + 1] : '')) ? ':' + (c.relatedPort || f[rport + 1]) : ''),
      relayProtocol: c.relayProtocol || '',
      url: c.url || '',
    };
  }

  async function run() {
    if (pc) pc.close();
    if (timer) clearTimeout(timer);
    for (const id of ['servers', 'candidates', 'errors']) clear(id);
    const counts = { host: 0, srflx: 0, prflx: 0, relay: 0 };
    const started = performance.now();
    const ms = () => Math.round(performance.now() - started);
    status('fetching the ICE configuration…', 'running');
    const query = new URLSearchParams({ userid: $('userid').value, ttl: $('ttl').value });
    let config;
    try {
      const r = await fetch('/ice-servers?' + query.toString(), {
        headers: { authorization: 'Bearer ' + token },
        cache: 'no-store',
        credentials: 'omit',
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error('/ice-servers answered ' + r.status + ': ' + (body.error || r.statusText));
      config = body;
    } catch (e) {
      status('cannot get the ICE configuration: ' + e.message, 'done-bad');
      return;
    }
    for (const s of config.iceServers) {
      for (const u of s.urls) addRow('servers', [u, s.username || '', s.username ? '(hidden)' : '']);
    }
    const policy = $('relay').checked ? 'relay' : 'all';
    pc = new RTCPeerConnection({ iceServers: config.iceServers, iceTransportPolicy: policy });
    pc.createDataChannel('turnpike-test');
    const finish = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      const summary = 'host ' + counts.host + ', srflx ' + counts.srflx + ', relay ' + counts.relay +
        ' after ' + ms() + ' ms';
      if (counts.relay > 0) status('TURN works: relay candidate gathered (' + summary + ')', 'done-ok');
      else status('no relay candidate: TURN did not work (' + summary + '); see the errors below', 'done-bad');
      $('result').textContent = JSON.stringify(counts);
    };
    pc.onicecandidate = (ev) => {
      if (!ev.candidate) { finish(); return; }
      if (!ev.candidate.candidate) return;
      const c = parse(ev.candidate);
      if (c.type in counts) counts[c.type]++;
      addRow('candidates', [ms(), c.type, c.protocol, c.address, c.port, c.related, c.relayProtocol, c.url]);
    };
    pc.onicecandidateerror = (ev) => {
      addRow('errors', [ms(), ev.url, ev.errorCode, ev.errorText, (ev.address || '') + (ev.port ? ':' + ev.port : '')]);
    };
    timer = setTimeout(() => { status('gathering timed out', 'running'); finish(); }, 15000);
    status('gathering candidates (policy ' + policy + ')…', 'running');
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
  }

  $('run').addEventListener('click', () => { run().catch((e) => status('failed: ' + e.message, 'done-bad')); });
  run().catch((e) => status('failed: ' + e.message, 'done-bad'));
})();
`;

const hash = (text: string): string =>
  `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Response headers of the page: a CSP that allows its own inline script and style, and nothing else. */
export const TEST_PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${hash(SCRIPT)}`,
    `style-src ${hash(STYLE)}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
});

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>turnpike ICE test</title>
<style>${STYLE}</style>
</head>
<body>
<h1>turnpike: ICE candidate test</h1>
<p>
<label>user id <input id="userid" value="test-page" maxlength="64"></label>
<label>ttl (s) <input id="ttl" value="600" size="6"></label>
<label><input id="relay" type="checkbox"> relay only</label>
<button id="run" type="button">Gather again</button>
</p>
<p id="status" data-state="idle">starting…</p>
<h2>ICE servers</h2>
<table><thead><tr><th>URL</th><th>username</th><th>credential</th></tr></thead><tbody id="servers"></tbody></table>
<h2>Candidates</h2>
<table><thead><tr><th>ms</th><th>type</th><th>protocol</th><th>address</th><th>port</th><th>related</th><th>relay protocol</th><th>server URL</th></tr></thead><tbody id="candidates"></tbody></table>
<h2>Errors</h2>
<table><thead><tr><th>ms</th><th>URL</th><th>code</th><th>text</th><th>local address</th></tr></thead><tbody id="errors"></tbody></table>
<pre id="result" hidden></pre>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** The page (static: nothing request-specific is in it). */
export function testPageHtml(): string {
  return HTML;
}
