#!/usr/bin/env node
/** aoegw: the AoE gateway's command-line entry point. */
import { Command, CommanderError } from 'commander';
import { AoegwError, type ErrorCode } from '../errors.js';
import { registerBench } from './cmd-bench.js';
import { registerConfig } from './cmd-config.js';
import { registerDiscover } from './cmd-discover.js';
import { registerEnroll } from './cmd-enroll.js';
import { registerExport } from './cmd-export.js';
import { registerHealth } from './cmd-health.js';
import { registerInvite } from './cmd-invite.js';
import { registerKeys } from './cmd-keys.js';
import { registerPeer } from './cmd-peer.js';
import { registerReload } from './cmd-reload.js';
import { registerRun } from './cmd-run.js';
import { registerServe } from './cmd-serve.js';
import { registerStatus } from './cmd-status.js';
import { registerTop } from './cmd-top.js';
import { registerVerify } from './cmd-verify.js';

export function buildProgram(): Command {
  const program = new Command('aoegw')
    .description('ATA over Ethernet gateway: native L2 AoE, encrypted tunnels, built-in target')
    .version('0.1.0')
    .showHelpAfterError()
    // Options belong to the command they follow: `invite list --config F` is list's --config,
    // not invite's (the program's own options, --help and --version, come first anyway).
    .enablePositionalOptions()
    .exitOverride();
  registerDiscover(program);
  registerBench(program);
  registerVerify(program);
  registerServe(program);
  registerRun(program);
  registerKeys(program);
  registerEnroll(program);
  registerConfig(program);
  registerPeer(program);
  registerExport(program);
  registerReload(program);
  registerStatus(program);
  registerHealth(program);
  registerTop(program);
  registerInvite(program);
  return program;
}

/**
 * Exit statuses (README, Commands): 0 ok, 1 any other error, 2 usage (bad flags), and one each for
 * the operator errors a service manager or a script should tell apart without parsing stderr.
 */
const EXIT_STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_USAGE: 2,
  ERR_CONFIG: 3,
  ERR_STATE_FILE: 4,
  ERR_STORE_OPEN: 5,
};

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof AoegwError) {
      process.stderr.write(`aoegw: ${e.message} [${e.code}]\n`);
      return EXIT_STATUS[e.code] ?? 1;
    }
    process.stderr.write(`aoegw: unexpected error: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  }
}

main(process.argv).then((code) => process.exit(code));
