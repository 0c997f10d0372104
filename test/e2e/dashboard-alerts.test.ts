/**
 * conf/grafana/turnpike.json and conf/prometheus/turnpike-alerts.yml, checked: promtool accepts the
 * rules and every PromQL expression of the dashboard (wrapped as recording rules), promtool's rule
 * unit tests make the alerts fire on made-up series, and every metric either file names exists in
 * the /metrics of a live daemon with TLS, whose certificate-expiry and relay-port metrics follow
 * the certificate (across a reload) and the allocations.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { freePort, metricsArgs, relayRange, startDaemon, tlsArgs } from '../fixtures/helpers/daemon.js';
import { sample, scrape } from '../fixtures/helpers/prometheus.js';
import { sleep, TurnClient } from '../fixtures/helpers/turn-client.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const ALERTS = join(root, 'conf', 'prometheus', 'turnpike-alerts.yml');
const DASHBOARD = join(root, 'conf', 'grafana', 'turnpike.json');
const PROMTOOL = '/usr/bin/promtool';
const noPromtool =
  !existsSync(PROMTOOL) && !process.env['CI'] ? 'promtool not installed (CI installs prometheus)' : false;

interface Target {
  readonly expr: string;
}
interface Panel {
  readonly type: string;
  readonly title: string;
  readonly repeat?: string;
  readonly targets?: readonly Target[];
}
interface Dashboard {
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly { name: string; type: string; definition?: string }[] };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => target.expr));
const alertExprs = [...readFileSync(ALERTS, 'utf8').matchAll(/expr: (?:\|\n((?: {10}.*\n)+)|(.*)\n)/g)].map(
  (m) => (m[1] ?? m[2] ?? '').trim(),
);

/** Grafana's variables replaced by what Prometheus would receive. */
function asPromql(expr: string): string {
  return expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '5m');
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'time',
]);

/**
 * Metric names in a PromQL expression: identifiers left once label matchers, strings, durations
 * and grouping clauses are gone, other than functions (followed by a parenthesis) and keywords.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call !== undefined || KEYWORDS.has(name!) || /^\d/.test(name!)) continue;
    names.add(name!);
  }
  return [...names];
}

t.test('the parts of the metric-name reader', async (t) => {
  t.same(metricNames('sum by (instance, job) (rate(turn_relay_packets_total{direction="x"}[5m])) > 0'), [
    'turn_relay_packets_total',
  ]);
  t.same(metricNames('process_open_fds / process_max_fds > 0.8\nand on (instance, job) turn_ready'), [
    'process_open_fds',
    'process_max_fds',
    'turn_ready',
  ]);
  t.same(metricNames('turn_tls_certificate_expiry_timestamp_seconds - time() < 14 * 86400'), [
    'turn_tls_certificate_expiry_timestamp_seconds',
  ]);
});

t.test('the dashboard: an instance variable, per-node panels, the panels operators look for', async (t) => {
  const instance = dashboard.templating.list.find((v) => v.name === 'instance');
  t.equal(instance?.type, 'query');
  t.match(instance?.definition, /^label_values\(turn_ready, instance\)$/);
  t.ok(
    dashboard.panels.some((p) => p.type === 'row' && p.repeat === 'instance'),
    'a row repeated per instance',
  );
  for (const expr of dashboardExprs)
    t.match(expr, /instance=~"\$instance"/, `filtered by $instance: ${expr}`);
  const titles = dashboard.panels.map((p) => p.title).join('\n');
  for (const wanted of [
    /Allocations by transport and family/,
    /Relay packets per second/,
    /Relay bandwidth/,
    /Drops by reason/,
    /Authentication/,
    /Error responses by code/,
    /Event loop lag/,
    /Resident memory/,
    /File descriptors/,
    /Relay ports/,
    /TLS certificate/,
  ]) {
    t.match(titles, wanted);
  }
});

t.test('promtool', { skip: noPromtool }, async (t) => {
  const dir = testDir(t);
  await t.test('check rules: the alerting rules', async (t) => {
    const r = await run(PROMTOOL, ['check', 'rules', ALERTS], { timeout: 30_000 });
    t.comment(r.stdout.trim());
    t.match(r.stdout, /SUCCESS: 13 rules found/);
    t.equal(alertExprs.length, 13, 'every expr read');
    const text = readFileSync(ALERTS, 'utf8');
    t.equal([...text.matchAll(/^ {10}runbook: "/gm)].length, 13, 'every alert has a runbook annotation');
  });

  await t.test('check rules: every expression of the dashboard, as recording rules', async (t) => {
    const file = join(dir, 'dashboard-rules.yml');
    const rules = dashboardExprs
      .map(
        (expr, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(asPromql(expr))}\n`,
      )
      .join('');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}`);
    const r = await run(PROMTOOL, ['check', 'rules', file], { timeout: 30_000 });
    t.comment(r.stdout.trim());
    t.match(r.stdout, new RegExp(`SUCCESS: ${dashboardExprs.length} rules found`));
    t.ok(dashboardExprs.length >= 20, `${dashboardExprs.length} expressions`);
    // The check can fail: a broken expression is refused.
    writeFileSync(
      file,
      'groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: "sum by (a (b)"\n',
    );
    const bad = await run(PROMTOOL, ['check', 'rules', file]).catch((e: { code: number }) => e);
    t.not((bad as { code?: number }).code ?? 0, 0, 'promtool refuses a broken expression');
  });

  await t.test('test rules: the alerts fire on made-up series', async (t) => {
    const tests = join(dir, 'alerts-test.yml');
    const day = 86400;
    writeFileSync(
      tests,
      `rule_files:
  - ${ALERTS}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'turn_tls_certificate_expiry_timestamp_seconds{instance="a:9641",job="turnpike"}'
        values: '${10 * day}x120'
      - series: 'turn_tls_certificate_expiry_timestamp_seconds{instance="b:9641",job="turnpike"}'
        values: '${60 * day}x120'
      - series: 'turn_relay_ports_used{instance="a:9641",job="turnpike",family="ipv4"}'
        values: '950x20'
      - series: 'turn_relay_ports_capacity{instance="a:9641",job="turnpike",family="ipv4"}'
        values: '1000x20'
      - series: 'turn_allocations{instance="a:9641",job="turnpike",transport="udp",family="ipv4"}'
        values: '5x40'
      - series: 'turn_relay_packets_total{instance="a:9641",job="turnpike",direction="client_to_peer"}'
        values: '100x40'
      - series: 'up{instance="c:9641",job="turnpike"}'
        values: '0x10'
      - series: 'turn_allocate_duration_seconds_bucket{instance="a:9641",job="turnpike",le="0.5"}'
        values: '0x40'
      - series: 'turn_allocate_duration_seconds_bucket{instance="a:9641",job="turnpike",le="1"}'
        values: '0+60x40'
      - series: 'turn_allocate_duration_seconds_bucket{instance="a:9641",job="turnpike",le="+Inf"}'
        values: '0+60x40'
      - series: 'turn_allocate_duration_seconds_count{instance="a:9641",job="turnpike"}'
        values: '0+60x40'
      - series: 'turn_allocate_duration_seconds_bucket{instance="b:9641",job="turnpike",le="0.001"}'
        values: '0+60x40'
      - series: 'turn_allocate_duration_seconds_bucket{instance="b:9641",job="turnpike",le="+Inf"}'
        values: '0+60x40'
      - series: 'turn_allocate_duration_seconds_count{instance="b:9641",job="turnpike"}'
        values: '0+60x40'
    alert_rule_test:
      - eval_time: 70m
        alertname: TurnpikeTlsCertificateExpiring
        exp_alerts:
          - exp_labels: { instance: "a:9641", job: turnpike, severity: warning }
            exp_annotations:
              summary: "TLS certificate of turnpike on a:9641 expires in 9d 22h 50m 0s"
              description: "The certificate in use (cert) expires within 14 days."
              runbook: "${/runbook: "(Renew the certificate \(certbot[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
      - eval_time: 10m
        alertname: TurnpikeRelayPortsNearExhaustion
        exp_alerts:
          - exp_labels: { instance: "a:9641", job: turnpike, family: ipv4, severity: warning }
            exp_annotations:
              summary: "turnpike on a:9641 uses 95% of its ipv4 relay ports"
              description: "New allocations get 508 when no relay port is left."
              runbook: "${/runbook: "(Widen[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
      - eval_time: 30m
        alertname: TurnpikeNoRelayTraffic
        exp_alerts:
          - exp_labels: { instance: "a:9641", job: turnpike, severity: warning }
            exp_annotations:
              summary: "turnpike on a:9641 holds allocations but relays nothing"
              description: "Allocations exist, yet no packet was relayed in either direction for 15 minutes."
              runbook: "${/runbook: "(Relay ports \(min-port[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
      - eval_time: 25m
        alertname: TurnpikeAllocationSetupSlow
        exp_alerts:
          - exp_labels: { instance: "a:9641", job: turnpike, severity: warning }
            exp_annotations:
              summary: "turnpike on a:9641: allocation setup p99 995ms"
              description: "${/description: "(One allocation in a hundred[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
              runbook: "${/runbook: "(In fleet mode the admission[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
      - eval_time: 5m
        alertname: TurnpikeDown
        exp_alerts:
          - exp_labels: { instance: "c:9641", job: turnpike, severity: critical }
            exp_annotations:
              summary: "turnpike on c:9641 is down"
              description: "Prometheus has not been able to scrape c:9641 for 2 minutes."
              runbook: "${/runbook: "(systemctl status turnpike[^"]*)"/.exec(readFileSync(ALERTS, 'utf8'))?.[1] ?? ''}"
`,
    );
    const r = await run(PROMTOOL, ['test', 'rules', tests], { timeout: 60_000 }).catch(
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
    t.comment(`${r.stdout}${r.stderr}`.trim());
    t.match(r.stdout, /SUCCESS/, 'the alerts fire as expected, and only for the right instances');
  });
});

t.test('every metric named by the dashboard and the alerts exists in a live daemon', async (t) => {
  const dir = testDir(t);
  const { cert, key } = makeCertificate(dir, 'localhost', 30);
  const metricsPort = await freePort();
  const tlsPort = await freePort();
  const [minPort, maxPort] = relayRange();
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    'example.test',
    '--user',
    'alice:wonderland',
    ...tlsArgs({ cert, key }, tlsPort),
    ...metricsArgs(metricsPort),
    '--min-port',
    String(minPort),
    '--max-port',
    String(maxPort),
  ]);
  t.teardown(() => d.stop());
  const client = await TurnClient.connect('127.0.0.1', d.port, {
    username: 'alice',
    password: 'wonderland',
    realm: 'example.test',
  });
  t.teardown(() => client.close());
  await client.allocate();

  const text = await scrape(metricsPort);
  const exposed = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exposed.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(m[1]! + s);
  }
  // `up` is written by Prometheus for every target, never by the target itself.
  const used = new Set(
    [...dashboardExprs, ...alertExprs, 'turn_ready']
      .flatMap((e) => metricNames(asPromql(e)))
      .filter((n) => n !== 'up'),
  );
  t.ok(used.size >= 25, `${used.size} metric names used`);
  for (const name of [...used].sort()) t.ok(exposed.has(name), `${name} is in /metrics`);

  const expiry = (): number | undefined => sample(text, 'turn_tls_certificate_expiry_timestamp_seconds');
  const notAfter = (file: string): number =>
    Math.floor(Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000);
  t.equal(expiry(), notAfter(cert), 'certificate expiry: the notAfter of the certificate in use');
  t.equal(sample(text, 'turn_ready'), 1);
  t.equal(sample(text, 'turn_relay_ports_capacity', 'family="ipv4"'), maxPort - minPort + 1);
  t.equal(sample(text, 'turn_relay_ports_used', 'family="ipv4"'), 1, 'one allocation, one port');

  // A renewed certificate (other expiry) put in place and reloaded: the metric follows.
  const renewed = makeCertificate(testDir(t), 'localhost', 90);
  renameSync(renewed.cert, cert);
  renameSync(renewed.key, key);
  d.proc.kill('SIGHUP');
  const want = notAfter(cert);
  let latest: number | undefined;
  for (let i = 0; i < 50 && latest !== want; i++) {
    await sleep(200);
    latest = sample(await scrape(metricsPort), 'turn_tls_certificate_expiry_timestamp_seconds');
  }
  t.equal(latest, want, "after the reload: the renewed certificate's notAfter");
  t.ok(want > (expiry() ?? 0) + 59 * 86400, '60 days later than before');
});

t.test('without TLS the certificate metric is absent, not 0', async (t) => {
  const metricsPort = await freePort();
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--prometheus',
    '--prometheus-port',
    String(metricsPort),
  ]);
  t.teardown(() => d.stop());
  const text = await scrape(metricsPort);
  t.equal(sample(text, 'turn_tls_certificate_expiry_timestamp_seconds'), undefined);
  t.notMatch(text, /turn_tls_certificate_expiry_timestamp_seconds/, 'not even its HELP line');
  t.equal(sample(text, 'turn_ready'), 1, 'the rest is there');
});
