/**
 * The NAT lab's foundation (issue 12; topology in test/fixtures/lab/topology.ts): network namespaces
 * with real Linux NAT (nftables masquerade) between two hosts and an "internet" where turnpike runs.
 *
 * - Scenario 1: behind a NAT that passes UDP, coturn's turnutils_stunclient in the host namespace
 *   learns the NAT's public address (203.0.113.10 / .20) from turnpike, never the private 10.x one;
 *   behind udp-blocked it learns nothing.
 * - The NAT behaviours are what they claim, measured from the internet side: one UDP socket on a
 *   host sends to two reflector ports, which report the source they saw. cone: the same public port
 *   for both (and, Linux keeping ports, the local port); symmetric: two different ports;
 *   udp-blocked: no datagram arrives while TCP does. Unsolicited datagrams (from a port the host
 *   never sent to) never get in, and cone keeps its port towards a peer whose datagram came (and was
 *   dropped) before the host's first one, the hole-punching case (see natRuleset's input chain). The
 *   internet has no route to 10.x, and IP forwarding is on in the routers only.
 * - Teardown leaves nothing behind, and `cleanupLeftovers` removes the namespaces (and processes) of
 *   a run that died without tearing down.
 *
 * Needs root, iproute2 and nftables: skipped with the reason locally, a failure in CI.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { sample } from '../fixtures/helpers/prometheus.js';
import { startLabDaemon } from '../fixtures/lab/daemon.js';
import {
  available,
  buildLab,
  cleanupLeftovers,
  type HostRole,
  IP,
  LAB_ADDR,
  LAB_PREFIX,
  type Lab,
  listNamespaces,
  type MappingObservation,
  pidAlive,
  skipReason,
} from '../fixtures/lab/topology.js';

const STUNCLIENT = '/usr/bin/turnutils_stunclient';
const skip = skipReason();

/** False (after failing `t`) when the lab cannot run: only reached in CI, or the test is skipped. */
function requireLab(t: Test): boolean {
  const a = available();
  if (!a.ok) t.fail(`${a.reason}, and CI is set: .ci/run must make the NAT lab possible`);
  return a.ok;
}

/** The reflexive addresses turnutils_stunclient printed ("UDP reflexive addr: 203.0.113.10:40887"). */
function reflexive(stdout: string): { address: string; port: number }[] {
  return [...stdout.matchAll(/UDP reflexive addr: ([\d.]+):(\d+)/g)].map((m) => ({
    address: m[1]!,
    port: Number(m[2]),
  }));
}

function show(o: MappingObservation): string {
  const at = (s: { address: string; port: number } | null): string =>
    s === null ? '-' : `${s.address}:${s.port}`;
  return (
    `local port ${o.localPort}; UDP seen by 7001, 7002 as [${o.udp.map(at).join(', ')}], then by 7003 ` +
    `(after its unsolicited datagram) as ${at(o.afterUnsolicited)}; ${o.udpArrived}/3 ports reached; ` +
    `unsolicited delivered: ${o.unsolicitedDelivered}; TCP seen as ${at(o.tcp)}`
  );
}

const stunSkip =
  skip ||
  (!existsSync(STUNCLIENT) && !process.env['CI']
    ? `${STUNCLIENT} not installed (CI installs coturn)`
    : false);

t.test(
  'scenario 1: STUN behind NAT returns the public address',
  { skip: stunSkip, timeout: 30_000 },
  async (t) => {
    if (!requireLab(t)) return;
    if (!existsSync(STUNCLIENT)) {
      t.fail(`${STUNCLIENT} is missing and CI is set: .ci/run installs coturn`);
      return;
    }
    const lab = await buildLab({ natA: 'cone', natB: 'symmetric', t });
    const d = await startLabDaemon(lab, { tls: true });
    t.equal(d.started['turn'], true, 'TURN is on (the user alice)');
    const listening = (d.started['listening'] as { serves: string; address: string; port: number }[])
      .map((l) => `${l.serves} ${l.address}:${l.port}`)
      .sort();
    t.same(
      listening,
      [
        'http 203.0.113.1:9641',
        'tcp+tls 203.0.113.1:3478',
        'tcp+tls 203.0.113.1:5349',
        'udp 203.0.113.1:3478',
      ],
      'turnpike listens on the lab address: UDP, TCP and TLS (each stream port serves both), metrics',
    );

    const cases: [HostRole, string, string][] = [
      ['hostA', LAB_ADDR.natA, LAB_ADDR.hostA],
      ['hostB', LAB_ADDR.natB, LAB_ADDR.hostB],
    ];
    for (const [host, publicAddress, privateAddress] of cases) {
      const r = await lab.execAsync(host, STUNCLIENT, ['-p', String(d.port), d.host], {
        timeout: 10_000,
        check: false,
      });
      t.equal(r.status, 0, `${host}: turnutils_stunclient exits 0 (${r.stderr.trim()})`);
      const seen = reflexive(r.stdout);
      const behaviour = lab.nat[host === 'hostA' ? 'routerA' : 'routerB'];
      t.ok(seen.length > 0, `${host} (${behaviour}): ${r.stdout.trim().replace(/\n/g, ' | ')}`);
      t.same([...new Set(seen.map((s) => s.address))], [publicAddress], `${host}: the NAT's public address`);
      t.notOk(
        seen.some((s) => s.address === privateAddress),
        `${host}: never the private one (${privateAddress})`,
      );
      t.ok(
        seen.every((s) => s.port > 0 && s.port < 65536),
        `${host}: a port (${seen.map((s) => s.port).join(', ')})`,
      );
    }
    const metrics = await d.metrics();
    t.ok(
      (sample(metrics, 'turn_stun_requests_total', 'method="Binding",result="success"') ?? 0) >= 2,
      'the Binding requests are in the metrics (fetched inside the internet namespace)',
    );

    // udp-blocked: no Binding gets out, so there is no reflexive address (stunclient retries forever).
    lab.setNat('routerA', 'udp-blocked');
    const blocked = await lab.execAsync('hostA', STUNCLIENT, ['-p', String(d.port), d.host], {
      timeout: 2000,
      check: false,
    });
    t.same(reflexive(blocked.stdout), [], 'behind udp-blocked, no reflexive address');
  },
);

/** A /proc/sys value of the root namespace (this process's). */
function rootSysctl(path: string): string {
  return readFileSync(`/proc/sys/${path}`, 'utf8').trim();
}

t.test('the NAT behaviours are real', { skip, timeout: 30_000 }, async (t) => {
  if (!requireLab(t)) return;
  const rootForwarding = rootSysctl('net/ipv4/ip_forward');
  const lab = await buildLab({ natA: 'cone', natB: 'symmetric', t });
  const forwarding = Object.fromEntries(
    (['internet', 'routerA', 'routerB', 'hostA', 'hostB'] as const).map((role) => [
      role,
      lab.exec(role, 'cat', ['/proc/sys/net/ipv4/ip_forward']).stdout.trim(),
    ]),
  );
  t.same(
    forwarding,
    { internet: '0', routerA: '1', routerB: '1', hostA: '0', hostB: '0' },
    'IP forwarding on in the routers only',
  );
  t.equal(rootSysctl('net/ipv4/ip_forward'), rootForwarding, 'the root namespace is untouched');

  const checkCone = async (host: HostRole, publicAddress: string): Promise<void> => {
    const o = await lab.observeMapping(host);
    t.comment(`${host} cone: ${show(o)}`);
    t.equal(o.udpArrived, 3, `${host} cone: the datagrams arrive`);
    t.same(
      o.udp.map((s) => s?.address),
      [publicAddress, publicAddress],
      `${host} cone: both destinations see the NAT's address`,
    );
    t.equal(o.udp[0]?.port, o.udp[1]?.port, `${host} cone: one public port for both destinations`);
    t.equal(o.udp[0]?.port, o.localPort, `${host} cone: Linux kept the local port`);
    t.equal(o.unsolicitedDelivered, false, `${host} cone: a port the host never sent to cannot get in`);
    t.equal(
      o.afterUnsolicited?.port,
      o.localPort,
      `${host} cone: still the same port to a peer whose packet came (and was dropped) first`,
    );
    t.same(o.tcp?.address, publicAddress, `${host} cone: TCP is translated too`);
  };
  const checkSymmetric = async (host: HostRole, publicAddress: string): Promise<void> => {
    const o = await lab.observeMapping(host);
    t.comment(`${host} symmetric: ${show(o)}`);
    t.equal(o.udpArrived, 3, `${host} symmetric: the datagrams arrive`);
    t.same(
      o.udp.map((s) => s?.address),
      [publicAddress, publicAddress],
      `${host} symmetric: both destinations see the NAT's address`,
    );
    t.not(o.udp[0]?.port, o.udp[1]?.port, `${host} symmetric: a different public port per destination`);
    t.equal(o.unsolicitedDelivered, false, `${host} symmetric: a port the host never sent to cannot get in`);
    t.same(o.afterUnsolicited?.address, publicAddress, `${host} symmetric: the third destination is reached`);
    t.same(o.tcp?.address, publicAddress, `${host} symmetric: TCP is translated`);
  };
  const checkUdpBlocked = async (host: HostRole, publicAddress: string): Promise<void> => {
    const o = await lab.observeMapping(host);
    t.comment(`${host} udp-blocked: ${show(o)}`);
    t.equal(o.udpArrived, 0, `${host} udp-blocked: no datagram reaches the internet`);
    t.same([...o.udp, o.afterUnsolicited], [null, null, null], `${host} udp-blocked: no answer`);
    t.same(o.tcp?.address, publicAddress, `${host} udp-blocked: TCP gets through, translated`);
  };

  await checkCone('hostA', LAB_ADDR.natA);
  await checkSymmetric('hostB', LAB_ADDR.natB);
  // Every behaviour on both routers, through setNat (new sockets each time: conntrack keeps old mappings).
  lab.setNat('routerA', 'symmetric');
  lab.setNat('routerB', 'udp-blocked');
  await checkSymmetric('hostA', LAB_ADDR.natA);
  await checkUdpBlocked('hostB', LAB_ADDR.natB);
  lab.setNat('routerA', 'udp-blocked');
  lab.setNat('routerB', 'cone');
  await checkUdpBlocked('hostA', LAB_ADDR.natA);
  await checkCone('hostB', LAB_ADDR.natB);

  // Only NATed traffic works: the internet has no route to the private networks.
  const probe =
    "const s = require('node:dgram').createSocket('udp4');" +
    "s.send('x', 9, process.argv[1], (err) => { process.stdout.write(err ? err.code : 'sent'); s.close(); });";
  for (const target of [LAB_ADDR.hostA, LAB_ADDR.hostB]) {
    const r = await lab.execAsync('internet', process.execPath, ['-e', probe, target]);
    t.equal(r.stdout, 'ENETUNREACH', `the internet cannot send to ${target}`);
  }
  const routes = lab.exec('internet', 'ip', ['-4', 'route', 'show']).stdout;
  t.notMatch(routes, /10\./, `no route to 10.x in the internet namespace:\n${routes.trim()}`);
});

t.test('labs coexist, and teardown leaves nothing behind', { skip, timeout: 30_000 }, async (t) => {
  if (!requireLab(t)) return;
  const [one, two] = await Promise.all([
    buildLab({ natA: 'symmetric', natB: 'cone' }),
    buildLab({ natA: 'cone', natB: 'cone' }),
  ]);
  const labs: Lab[] = [one, two];
  t.teardown(() => Promise.all(labs.map((l) => l.teardown())));
  t.not(one.id, two.id, 'two labs, two names');
  const [a1, a2] = await Promise.all([one.observeMapping('hostA'), two.observeMapping('hostA')]);
  t.not(a1.udp[0]?.port, a1.udp[1]?.port, `lab ${one.id} host A is behind its symmetric NAT`);
  t.equal(a2.udp[0]?.port, a2.udp[1]?.port, `lab ${two.id} host A is behind its cone NAT`);

  // A tracked process, and one the lab did not start (through its wrapper script): both must die.
  const tracked = one.spawn('hostB', 'sleep', ['60'], { stdio: 'ignore' });
  const untracked = spawn(one.wrapper('routerA', 'sleep'), ['60'], { stdio: 'ignore', detached: true });
  t.teardown(() => {
    if (untracked.exitCode === null && untracked.signalCode === null) untracked.kill('SIGKILL');
  });
  const exits = [tracked, untracked].map(
    (p) =>
      new Promise<string>((resolve) => p.once('exit', (code, signal) => resolve(String(signal ?? code)))),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const inside = spawnSync(IP, ['netns', 'identify', String(untracked.pid)], {
    encoding: 'utf8',
  }).stdout.trim();
  t.equal(inside, one.ns.routerA, 'the wrapper ran its program inside the namespace');

  const started = Date.now();
  await one.teardown();
  t.comment(`teardown took ${Date.now() - started} ms`);
  t.same(
    listNamespaces().filter((n) => n.startsWith(`${one.id}-`)),
    [],
    'no namespace of the torn-down lab is left',
  );
  t.same(await Promise.all(exits), ['SIGTERM', 'SIGKILL'], 'its processes are gone (tracked: SIGTERM)');
  t.ok(listNamespaces().filter((n) => n.startsWith(`${two.id}-`)).length === 5, 'the other lab is untouched');
  t.throws(() => one.exec('hostA', 'true'), /torn down/, 'a torn-down lab refuses commands');
  await one.teardown(); // idempotent
  await two.teardown();
  t.same(
    listNamespaces().filter((n) => n.startsWith(`${two.id}-`)),
    [],
    'the second lab is gone too',
  );
});

t.test('cleanupLeftovers removes what an aborted run left', { skip, timeout: 30_000 }, async (t) => {
  if (!requireLab(t)) return;
  // A PID that existed and is gone: a finished child's.
  const deadPid = spawnSync('true').pid;
  t.ok(deadPid > 0, 'a dead PID');
  const leftover = `${LAB_PREFIX}${deadPid}-0-inet`;
  const ours = `${LAB_PREFIX}${process.pid}-keep`;
  t.teardown(() => {
    for (const name of [leftover, ours]) spawnSync(IP, ['netns', 'del', name]);
  });
  for (const name of [leftover, ours]) {
    const r = spawnSync(IP, ['netns', 'add', name], { encoding: 'utf8' });
    t.equal(r.status, 0, `created ${name} ${r.stderr}`);
  }
  const veth = spawnSync(
    'ip',
    ['-n', leftover, 'link', 'add', 'wan', 'type', 'veth', 'peer', 'name', 'lan'],
    {
      encoding: 'utf8',
    },
  );
  t.equal(veth.status, 0, `a veth pair in the leftover ${veth.stderr}`);
  // A process the aborted run left running in its namespace.
  const orphan = spawn(IP, ['netns', 'exec', leftover, 'sleep', '60'], { stdio: 'ignore' });
  t.teardown(() => {
    if (orphan.exitCode === null && orphan.signalCode === null) orphan.kill('SIGKILL');
  });
  const orphanExit = new Promise<string>((resolve) =>
    orphan.once('exit', (code, signal) => resolve(String(signal ?? code))),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));

  const removed = cleanupLeftovers();
  // Another lab test running in parallel may have removed it first: what counts is that it is gone.
  t.comment(`cleanupLeftovers removed ${JSON.stringify(removed)}`);
  t.notOk(listNamespaces().includes(leftover), `the leftover ${leftover} is gone`);
  t.equal(await orphanExit, 'SIGKILL', 'the process left inside it is killed');
  t.ok(listNamespaces().includes(ours), `a namespace of a live PID (${ours}) is kept`);
  t.notOk(removed.includes(ours), 'and not reported');
});

/** Where a child process imports the lab from (through tsx, as the tests do). */
const TOPOLOGY = fileURLToPath(new URL('../fixtures/lab/topology.ts', import.meta.url));

interface LabProcess {
  readonly signal: NodeJS.Signals;
  readonly proc: ChildProcess;
  /** What it built: the lab's id and the PID of the process it started inside. */
  readonly built: Promise<{ id: string; sleeper: number }>;
  /** Its exit (the signal's name or the code) and its stderr. */
  readonly exit: Promise<{ how: string; stderr: string }>;
}

/** A child process that builds a lab with a process in it, reports it, and waits to be killed. */
function labProcess(signal: NodeJS.Signals): LabProcess {
  const script =
    'const { buildLab } = await import(process.argv[1]);' +
    "const lab = await buildLab({ natA: 'cone', natB: 'symmetric' });" +
    "const sleeper = lab.spawn('hostA', 'sleep', ['60'], { stdio: 'ignore' });" +
    'process.stdout.write(JSON.stringify({ id: lab.id, sleeper: sleeper.pid }) + "\\n");' +
    'setInterval(() => {}, 1000);';
  const proc = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script, TOPOLOGY], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<{ how: string; stderr: string }>((resolve) =>
    proc.once('exit', (code, sig) => resolve({ how: String(sig ?? code), stderr: err })),
  );
  const built = new Promise<{ id: string; sleeper: number }>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(JSON.parse(out));
    });
    void exit.then(({ how, stderr }) => reject(new Error(`lab process exited (${how}): ${stderr}`)));
  });
  built.catch(() => {});
  return { signal, proc, built, exit };
}

/** Waits up to a second for `pid` to be gone (a SIGKILLed process is a zombie until reaped). */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 20 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  return !pidAlive(pid);
}

t.test(
  'a killed test process leaves nothing, or a leftover that is cleaned up',
  { skip, timeout: 30_000 },
  async (t) => {
    if (!requireLab(t)) return;
    const children = (['SIGTERM', 'SIGINT', 'SIGALRM', 'SIGKILL'] as const).map(labProcess);
    t.teardown(() => {
      for (const c of children)
        if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    });
    const built = await Promise.all(children.map((c) => c.built));
    const left = (id: string): string[] => listNamespaces().filter((n) => n.startsWith(`${id}-`));

    // Signals a process can catch: its own handler tears the lab down, then it dies of the signal.
    // (No cleanupLeftovers runs in this process meanwhile. One in a parallel test process only deletes
    // namespaces of a dead PID, i.e. after the child's teardown finished or failed, and a failure
    // would show on the child's stderr.)
    await Promise.all(
      children.slice(0, 3).map(async (c, i) => {
        const lab = built[i]!;
        c.proc.kill(c.signal);
        const { how, stderr } = await c.exit;
        t.equal(how, c.signal, `${c.signal}: the process still dies of the signal`);
        t.equal(stderr, '', `${c.signal}: its teardown reported nothing`);
        t.same(left(lab.id), [], `${c.signal}: no namespace of ${lab.id} is left`);
        t.ok(await gone(lab.sleeper), `${c.signal}: the process inside the lab is gone`);
      }),
    );

    // SIGKILL: nothing runs, the lab stays behind until some cleanupLeftovers (this one, or a parallel
    // test process's) deletes it and kills what runs inside.
    const c = children[3]!;
    const lab = built[3]!;
    c.proc.kill('SIGKILL');
    t.equal((await c.exit).how, 'SIGKILL', 'SIGKILL: the process dies');
    t.comment(`SIGKILL left ${left(lab.id).length} namespaces of ${lab.id}`);
    const removed = cleanupLeftovers();
    t.comment(`cleanupLeftovers removed ${JSON.stringify(removed)}`);
    t.same(left(lab.id), [], `SIGKILL: none of ${lab.id} after cleanupLeftovers`);
    t.ok(await gone(lab.sleeper), 'SIGKILL: the process left inside the lab is killed');
  },
);

t.test('no namespace of this process is left', { skip }, async (t) => {
  if (!requireLab(t)) return;
  // After every test's teardown; the "keep" namespace of the previous test is deleted by its teardown.
  t.same(
    listNamespaces().filter((n) => n.startsWith(`${LAB_PREFIX}${process.pid}-`)),
    [],
    'ip netns list shows none',
  );
});
