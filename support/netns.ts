/**
 * Network-namespace fixtures for integration tests: uniquely named namespaces and veth pairs that
 * are always deleted (afterAll, and on process exit as a last resort). Only names this module
 * created are ever deleted.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

const created = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
  });
}

/** Why namespace tests cannot run here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, AF_PACKET)';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (`ip`) is not installed';
  return undefined;
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

export function nsExec(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8' });
}

export function uniqueId(): string {
  return randomBytes(3).toString('hex');
}

export class Netns {
  readonly name: string;
  constructor(prefix = 'ns') {
    this.name = `aoegw-${prefix}-${uniqueId()}`;
    ip('netns', 'add', this.name);
    created.add(this.name);
    installExitHook();
    ip('-n', this.name, 'link', 'set', 'lo', 'up');
  }

  ip(...args: string[]): string {
    return ip('-n', this.name, ...args);
  }

  exec(cmd: string, ...args: string[]): string {
    return nsExec(this.name, cmd, ...args);
  }

  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  delete(): void {
    if (!created.has(this.name)) return;
    if (existsSync(this.path)) spawnSync('ip', ['netns', 'del', this.name]);
    created.delete(this.name);
  }
}

export interface VethPair {
  a: string;
  b: string;
}

/** A veth pair with end `a` in namespace A and end `b` in namespace B, both up, with the MTU. */
export function vethPair(nsA: Netns, nsB: Netns, mtu = 1500, tag = uniqueId()): VethPair {
  const a = `va${tag}`;
  const b = `vb${tag}`;
  ip(
    'link',
    'add',
    a,
    'netns',
    nsA.name,
    'mtu',
    String(mtu),
    'type',
    'veth',
    'peer',
    'name',
    b,
    'netns',
    nsB.name,
    'mtu',
    String(mtu),
  );
  nsA.ip('link', 'set', a, 'up');
  nsB.ip('link', 'set', b, 'up');
  return { a, b };
}
