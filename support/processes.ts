/**
 * Child processes for integration tests (vblade, aoegw), killed by PID on cleanup — never by name,
 * since the machine is shared.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

const live = new Set<ChildProcess>();
let hook = false;

export interface Spawned {
  child: ChildProcess;
  output: () => string;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** A pipe to the child's stdin (child.stdin), for processes controlled by what they read there. */
  stdin?: boolean;
}

export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, {
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  });
  live.add(child);
  if (!hook) {
    hook = true;
    process.on('exit', () => {
      for (const c of live) if (c.pid && c.exitCode === null) c.kill('SIGKILL');
    });
  }
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.on('exit', () => live.delete(child));
  return {
    child,
    output: () => out,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** vblade serving `image` as shelf.slot on `iface` inside namespace `ns`. */
export function startVblade(
  ns: string,
  shelf: number,
  slot: number,
  iface: string,
  image: string,
  extra: string[] = [],
): Spawned {
  // `ip netns exec` execs vblade directly, so the PID we hold is vblade's own.
  return spawnTracked('ip', [
    'netns',
    'exec',
    ns,
    'vblade',
    ...extra,
    String(shelf),
    String(slot),
    iface,
    image,
  ]);
}
