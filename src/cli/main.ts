#!/usr/bin/env node
/** aoegw: the AoE gateway's command-line entry point. */
import { Command, CommanderError } from 'commander';
import { AoegwError, type ErrorCode } from '../errors.js';

type Register = (program: Command) => void;

/**
 * Every command and the module that registers it, in help order. Only the invoked command's module
 * is loaded (the whole set for help and unknown words): a monitor that runs `aoegw health` every
 * few seconds should not pay for the daemon's, the tunnel's and the metrics' modules each time.
 */
const COMMANDS: [name: string, load: () => Promise<Register>][] = [
  ['discover', async () => (await import('./cmd-discover.js')).registerDiscover],
  ['bench', async () => (await import('./cmd-bench.js')).registerBench],
  ['verify', async () => (await import('./cmd-verify.js')).registerVerify],
  ['serve', async () => (await import('./cmd-serve.js')).registerServe],
  ['run', async () => (await import('./cmd-run.js')).registerRun],
  ['keygen pubkey', async () => (await import('./cmd-keys.js')).registerKeys],
  ['enroll', async () => (await import('./cmd-enroll.js')).registerEnroll],
  ['config', async () => (await import('./cmd-config.js')).registerConfig],
  ['peer', async () => (await import('./cmd-peer.js')).registerPeer],
  ['export', async () => (await import('./cmd-export.js')).registerExport],
  ['reload', async () => (await import('./cmd-reload.js')).registerReload],
  ['status', async () => (await import('./cmd-status.js')).registerStatus],
  ['health', async () => (await import('./cmd-health.js')).registerHealth],
  ['release-mac', async () => (await import('./cmd-release-mac.js')).registerReleaseMac],
  ['top', async () => (await import('./cmd-top.js')).registerTop],
  ['invite', async () => (await import('./cmd-invite.js')).registerInvite],
];

/** The program with the command `argv` names (every command when it names none it knows). */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('aoegw')
    .description('ATA over Ethernet gateway: native L2 AoE, encrypted tunnels, built-in target')
    .version('0.1.0')
    .showHelpAfterError()
    // Options belong to the command they follow: `invite list --config F` is list's --config,
    // not invite's (the program's own options, --help and --version, come first anyway).
    .enablePositionalOptions()
    .exitOverride();
  // The program's own options come before the command, so the first word is the command's name.
  const word = argv[2];
  const named = COMMANDS.filter(([names]) => names.split(' ').includes(word ?? ''));
  for (const [, load] of named.length > 0 ? named : COMMANDS) (await load())(program);
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
    await (await buildProgram(argv)).parseAsync(argv);
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
