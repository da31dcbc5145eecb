/**
 * Issue 11's "done when": two fresh gateways in their own namespaces, on either side of the routed
 * WAN, go from `aoegw keygen` to verified I/O using only `aoegw invite` and `aoegw enroll` — no key
 * copied by hand, no peer typed into a config. Then what must fail does, and changes nothing: the
 * same token again (already enrolled here; burned there), a token whose PSK was altered (the
 * inviter answers, the response does not authenticate, the invite stays live), a key that is not
 * the token holder's using a burned invite. And nothing secret shows in any log or output.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToken, encodeToken } from '../../src/enroll/token.js';
import { Initiator } from '../../src/initiator/initiator.js';
import { identify } from '../../src/initiator/operations.js';
import { verifyPattern } from '../../src/initiator/verify.js';
import { PacketLink } from '../../src/io/packet-link.js';
import { gatewayRunSkipReason, gatewayStats, startGateway } from '../../support/gateway-pair.js';
import { logRecords } from '../../support/log-lines.js';
import { createTwoSite, type TwoSite } from '../../support/two-site.js';
import { AOEGW } from '../helpers/aoegw.js';
import { netnsSkipReason } from '../helpers/netns.js';
import type { Spawned } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const skip = netnsSkipReason() ?? gatewayRunSkipReason();
const PORT = 7788;

/** What every CLI run wrote (but `invite`'s stdout: the token is its output). */
const cliOutput: string[] = [];

/** Runs the CLI (optionally inside a namespace, optionally with stdin); never throws. */
function cli(args: string[], o: { ns?: string; input?: string } = {}) {
  const cmd = o.ns ? 'ip' : process.execPath;
  const argv = o.ns ? ['netns', 'exec', o.ns, process.execPath, AOEGW, ...args] : [AOEGW, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', input: o.input ?? '', timeout: 60_000 });
  cliOutput.push(r.stderr, args[0] === 'invite' ? '' : r.stdout);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function enrollmentDoc(path: string): { invites: unknown[]; peers: { name: string }[] } {
  return JSON.parse(readFileSync(path, 'utf8'));
}

describe.skipIf(skip)('enrollment: keygen → invite → enroll → verified I/O', () => {
  let site: TwoSite;
  let dir: string;
  const procs: Spawned[] = [];
  let configA: string;
  let configB: string;
  let enrollB: string;
  let enrollA: string;
  let gwA: Spawned;
  let gwB: Spawned;

  beforeAll(async () => {
    site = createTwoSite();
    dir = mkdtempSync(join(tmpdir(), 'aoegw-enroll-'));
    for (const side of ['a', 'b']) mkdirSync(join(dir, side), { mode: 0o700 });
    const keyA = join(dir, 'a', 'gateway.key');
    const keyB = join(dir, 'b', 'gateway.key');
    for (const k of [keyA, keyB]) expect(cli(['keygen', k]).status).toBe(0);
    const image = join(dir, 'b', 'disk-b1.img');
    writeFileSync(image, '');
    truncateSync(image, 32 << 20);
    configB = join(dir, 'b', 'gateway.json');
    configA = join(dir, 'a', 'gateway.json');
    writeFileSync(
      configB,
      `${JSON.stringify(
        {
          name: 'site-b',
          privateKeyFile: keyB,
          listen: `${site.ip.gwBWan}:${PORT}`,
          stateFile: join(dir, 'b', 'state.json'),
          links: [{ name: 'lan', iface: site.iface.gwBLan }],
          exports: [{ target: '1.1', name: 'disk-b1', path: image }],
        },
        null,
        2,
      )}\n`,
    );
    writeFileSync(
      configA,
      `${JSON.stringify(
        {
          name: 'site-a',
          privateKeyFile: keyA,
          listen: `${site.ip.gwAWan}:${PORT}`,
          stateFile: join(dir, 'a', 'state.json'),
          links: [{ name: 'lan', iface: site.iface.gwALan }],
        },
        null,
        2,
      )}\n`,
    );
    enrollB = join(dir, 'b', 'enrollment.json');
    enrollA = join(dir, 'a', 'enrollment.json');
    gwB = await startGateway(site.ns.gwB.name, configB);
    gwA = await startGateway(site.ns.gwA.name, configA);
    procs.push(gwA, gwB);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) await p.stop();
    site?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let token = '';

  it('invite on B prints a token; the pending invite is in a 0600 file and B knows it at once', () => {
    const r = cli([
      'invite',
      '--config',
      configB,
      '--name',
      'site-a',
      '--allow',
      'disk-b1:rw',
      '--expires',
      '10m',
    ]);
    expect(r.status, r.stderr).toBe(0);
    token = r.stdout.trim();
    expect(token).toMatch(/^aoegw-invite1\.[A-Za-z0-9_-]+$/);
    expect(r.stderr).toMatch(/daemon reloaded/);
    const psk = Buffer.from(decodeToken(token, Date.now()).psk);
    expect(r.stderr).not.toContain(psk.toString('base64'));
    expect(statSync(enrollB).mode & 0o777).toBe(0o600);
    expect(enrollmentDoc(enrollB).invites).toHaveLength(1);
  });

  it('a token whose PSK was altered gets an answer that does not authenticate; nothing changes on either side', () => {
    const t = decodeToken(token, Date.now());
    const bad = encodeToken({ ...t, psk: Uint8Array.from(t.psk, (b, i) => (i === 0 ? b ^ 1 : b)) });
    const r = cli(['enroll', '-', '--config', configA, '--timeout', '5'], {
      ns: site.ns.gwA.name,
      input: bad,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/does not authenticate with the token's PSK/);
    expect(enrollmentDoc(enrollB).invites).toHaveLength(1);
    expect(enrollmentDoc(enrollB).peers).toHaveLength(0);
    expect(() => statSync(enrollA)).toThrow();
  });

  it('enroll on A pins B, imports what B granted, and A presents it on its LAN: verified I/O through the tunnel', async () => {
    const r = cli(['enroll', '-', '--config', configA], { ns: site.ns.gwA.name, input: token });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/enrolled with site-b at 10\.91\.2\.2:7788; it is peer site-b here/);
    expect(r.stdout).toMatch(/granted: disk-b1 \(rw\)/);
    expect(r.stdout).toMatch(/imports: disk-b1 as e1\.1/);
    expect(r.stderr).toMatch(/daemon reloaded/);
    // B burned the invite and pinned A with the invite's grant.
    const b = enrollmentDoc(enrollB);
    expect(b.invites).toHaveLength(0);
    expect(b.peers.map((p) => p.name)).toEqual(['site-a']);
    expect(enrollmentDoc(enrollA).peers.map((p) => p.name)).toEqual(['site-b']);
    const ini = new Initiator(PacketLink.open({ iface: site.iface.ini, netns: site.ns.ini.name }));
    try {
      // A reloads, handshakes with B (zero PSK now) and learns the advertisement: a few round trips.
      let adverts: Awaited<ReturnType<Initiator['queryConfig']>> = [];
      for (const until = Date.now() + 20_000; Date.now() < until; ) {
        adverts = await ini.queryConfig(500);
        if (adverts.some((a) => a.major === 1 && a.minor === 1)) break;
      }
      const a = adverts.find((x) => x.major === 1 && x.minor === 1)!;
      const c = ini.client(a);
      const identity = await identify(ini, c);
      expect(identity.serial).toBe('disk-b1');
      const v = await verifyPattern(ini, c, { startLba: 0, sectors: 4096, seed: 11, identity });
      expect(v.mismatches).toBe(0);
    } finally {
      ini.close();
    }
    // B completed two handshakes: the enrollment (invite PSK) and A's daemon's (zero PSK: B forgot
    // the invite's), which carried the I/O. B's peers: site-a only, with the invite's grant.
    // Neither daemon nor the CLI ever showed the PSK, in any usual spelling.
    const psk = Buffer.from(decodeToken(token, Date.now()).psk);
    for (const text of [gwA.output(), gwB.output(), r.stdout, r.stderr]) {
      for (const spelled of [psk.toString('base64'), psk.toString('base64url'), psk.toString('hex')])
        expect(text).not.toContain(spelled);
    }
    const b2 = await gatewayStats(gwB);
    expect(b2.tunnel.handshakesCompleted).toBeGreaterThanOrEqual(2);
    const a2 = await gatewayStats(gwA);
    expect(a2.tunnel.handshakesCompleted).toBeGreaterThanOrEqual(1);
  });

  it('the same token again: refused here (already enrolled), and B would not answer it anyway', () => {
    const again = cli(['enroll', '-', '--config', configA], { ns: site.ns.gwA.name, input: token });
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already enrolled/);
    // Another host (a fresh key and config in A's namespace) replaying the burned invite.
    const k = join(dir, 'a', 'other.key');
    expect(cli(['keygen', k]).status).toBe(0);
    const other = join(dir, 'a', 'other.json');
    writeFileSync(
      other,
      JSON.stringify({
        name: 'other',
        privateKeyFile: k,
        listen: `${site.ip.gwAWan}:${PORT + 1}`,
        stateFile: join(dir, 'a', 'other-state.json'),
        enrollmentFile: join(dir, 'a', 'other-enrollment.json'),
        controlSocket: join(dir, 'a', 'other.sock'),
        links: [{ name: 'lan', iface: site.iface.gwALan }],
      }),
    );
    const replay = cli(['enroll', '-', '--config', other, '--timeout', '3'], {
      ns: site.ns.gwA.name,
      input: token,
    });
    expect(replay.status).not.toBe(0);
    expect(replay.stderr).toMatch(/no inviter answered/);
    expect(enrollmentDoc(enrollB).peers.map((p) => p.name)).toEqual(['site-a']);
  });

  it('no secret in any log: private keys, the PSK, the token, in base64, base64url or hex', async () => {
    // The burned invite's replay above was refused by B (unknown invite): counted per datagram,
    // reported by one warning in B's next 10 s interval, which must not carry secrets either.
    const refusals = () =>
      logRecords(gwB.output()).filter((r) => r.component === 'input' && r.reason === 'unknown_invite');
    expect(await waitFor(() => refusals().length > 0, 12_000), gwB.output()).toBe(true);
    // One line per interval, whatever the number of datagrams (the replay may span two intervals).
    expect(refusals().length).toBeLessThanOrEqual(2);
    expect(refusals()[0]).toMatchObject({
      level: 'warn',
      msg: expect.stringMatching(/^rejected \d+ tunnel datagrams?: unknown invite in the last 10 s$/),
    });
    const t = decodeToken(token, Date.now());
    const secrets: Buffer[] = [Buffer.from(t.psk)];
    for (const side of ['a', 'b']) {
      const line = readFileSync(join(dir, side, 'gateway.key'), 'utf8').trim();
      secrets.push(Buffer.from(line, 'base64'));
    }
    const spellings = secrets.flatMap((k) => [
      k.toString('base64'),
      k.toString('base64url'),
      k.toString('hex'),
    ]);
    // The token itself, and its body without the prefix.
    spellings.push(token, token.slice(token.indexOf('.') + 1));
    // The daemons logged JSON (stderr is a pipe), with levels; the CLI's lines are text.
    for (const gw of [gwA, gwB]) {
      const records = logRecords(gw.output());
      expect(records.length).toBeGreaterThan(2);
      expect(records.some((r) => r.msg.startsWith('enrolled site-a'))).toBe(gw === gwB);
    }
    const texts = [gwA.output(), gwB.output(), ...cliOutput];
    expect(cliOutput.length).toBeGreaterThan(8);
    for (const text of texts) for (const spelled of spellings) expect(text).not.toContain(spelled);
  });
});
