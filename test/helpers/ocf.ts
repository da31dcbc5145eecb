/** deploy/ocf/aoegw run as Pacemaker runs it: one action, its OCF exit code and its output. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { AOEGW, ROOT } from './aoegw.js';

export const OCF_AGENT = join(ROOT, 'deploy', 'ocf', 'aoegw');
export const OCF = {
  SUCCESS: 0,
  ERR_GENERIC: 1,
  ERR_UNIMPLEMENTED: 3,
  ERR_INSTALLED: 5,
  ERR_CONFIGURED: 6,
  NOT_RUNNING: 7,
} as const;

export interface OcfResource {
  config: string;
  /** The daemon's log file (the agent's `log` parameter). */
  log: string;
  /** The node's resource-agent state directory ($HA_RSCTMP; Pacemaker keeps one per node). */
  rsctmp: string;
  /** Without resource-agents installed: a directory with no ocf-shellfuncs in it. */
  ocfRoot: string;
  waitS?: number;
}

export type OcfRun = (
  action: string,
  env?: Record<string, string>,
) => { code: number | null; out: string; err: string };

/** The agent for one resource: the built CLI as its binary, the environment Pacemaker sets. */
export function ocfAgent(r: OcfResource): OcfRun {
  return (action, env = {}) => {
    const p = spawnSync('sh', [OCF_AGENT, action], {
      encoding: 'utf8',
      timeout: 90_000,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        OCF_ROOT: r.ocfRoot,
        OCF_RESKEY_config: r.config,
        OCF_RESKEY_binary: `${process.execPath} ${AOEGW}`,
        OCF_RESKEY_log: r.log,
        OCF_RESKEY_start_wait: String(r.waitS ?? 20),
        OCF_RESKEY_stop_wait: String(r.waitS ?? 20),
        HA_RSCTMP: r.rsctmp,
        ...env,
      },
    });
    return { code: p.status, out: p.stdout, err: p.stderr };
  };
}
