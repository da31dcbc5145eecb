/**
 * The real Linux AoE initiator (Debian kernel, aoe.ko v85) in qemu, via ../shared/linux-initiator.
 * Tests skip with a clear reason when the harness or its cache is missing; in CI both exist
 * (scripts/setup.sh builds the cache into LI_CACHE_DIR).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LI_DIR =
  process.env.LI_DIR ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'linux-initiator');
export const LI_CACHE_DIR = process.env.LI_CACHE_DIR ?? '/var/cache/aoegw-li';

export function linuxInitiatorSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(join(LI_DIR, 'run.sh'))) return `Linux initiator harness not found at ${LI_DIR}`;
  if (!existsSync(join(LI_CACHE_DIR, 'initramfs.cpio'))) {
    return `Linux initiator cache missing in ${LI_CACHE_DIR} (run scripts/setup.sh)`;
  }
  return undefined;
}

export interface LiResult {
  rc: number | null;
  log: string;
  passed: string[];
  failed: string[];
  data: Record<string, string>;
  result: string;
}

export interface LiRunOptions {
  netns: string;
  iface: string;
  /** Workload script text (busybox sh; `. /li/lib.sh` is available). */
  script: string;
  env?: Record<string, string | number>;
  timeoutS?: number;
  mtu?: number;
  aoeParams?: string;
  /** Called with each console line as it arrives (e.g. to act when the VM reaches a step). */
  onLine?: (line: string) => void;
}

export async function runLinuxInitiator(o: LiRunOptions): Promise<LiResult> {
  const dir = mkdtempSync(join(tmpdir(), 'aoegw-li-'));
  try {
    const script = join(dir, 'workload.sh');
    writeFileSync(script, o.script);
    const logFile = join(dir, 'console.log');
    const args = [join(LI_DIR, 'run.sh'), '--netns', o.netns, '--iface', o.iface, '--script', script];
    args.push('--timeout', String(o.timeoutS ?? 150), '--log', logFile);
    if (o.mtu) args.push('--mtu', String(o.mtu));
    if (o.aoeParams) args.push('--aoe-params', o.aoeParams);
    for (const [k, v] of Object.entries(o.env ?? {})) args.push('--env', `${k}=${v}`);
    // run.sh pipes the console through `tr`, which block-buffers into a pipe: lines (and the host's
    // reactions to them, onLine) would arrive only at the end. stdbuf's line buffering is inherited
    // by run.sh's children through the environment.
    const child = spawn('stdbuf', ['-oL', 'bash', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LI_CACHE_DIR },
    });
    let out = '';
    let partial = '';
    const onData = (d: Buffer) => {
      out += d;
      partial += d;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        o.onLine?.(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const rc = await new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : out;
    const passed: string[] = [];
    const failed: string[] = [];
    const data: Record<string, string> = {};
    let result = '';
    for (const line of `${log}\n${out}`.split('\n')) {
      let m = /LI-CHECK: (PASS|FAIL) (.*)$/.exec(line);
      if (m) (m[1] === 'PASS' ? passed : failed).push(m[2]!.trim());
      m = /LI-DATA: ([^=]+)=(.*)$/.exec(line);
      if (m) data[m[1]!.trim()] = m[2]!.trim();
      m = /LI-RESULT: (.*)$/.exec(line);
      if (m) result = m[1]!.trim();
    }
    return { rc, log: out, passed: [...new Set(passed)], failed: [...new Set(failed)], data, result };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
