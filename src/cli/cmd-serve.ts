import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_FAIL_AFTER_MS, DEFAULT_TUNNEL_MTU } from '../config/gateway-config.js';
import { DEFAULT_BUSY_POLL_US, loadTargetConfig, parseExportSpec } from '../config/target-config.js';
import { startBadInputReporter } from '../control/bad-input.js';
import { stderrLine } from '../control/log.js';
import { AoegwError } from '../errors.js';
import { Gateway } from '../gateway/daemon.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import { lockStateFile } from '../io/daemon-lock.js';
import { BLOCK_IO_MODES, type BlockIoMode, type TargetSpec } from '../target/spec.js';
import { intOption } from './common.js';
import { LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, type LogCliOptions, openDaemonLog } from './daemon-log.js';
import { openRunSystemd } from './run-systemd.js';

interface ServeOpts extends LogCliOptions {
  config?: string;
  iface: string[];
  netns?: string;
  export: string[];
  state?: string;
  batch?: number;
  busyPollUs?: number;
  blockIo?: string;
}

/** Builds a config from --iface/--export when no --config file is given. */
function configFromFlags(o: ServeOpts): TargetSpec {
  if (o.iface.length === 0)
    throw new AoegwError('ERR_USAGE', 'serve needs --config FILE, or at least one --iface');
  if (o.export.length === 0)
    throw new AoegwError('ERR_USAGE', 'serve needs --config FILE, or at least one --export');
  return {
    stateFile: o.state ?? '/var/lib/aoegw/target-state.json',
    links: o.iface.map((iface) => ({
      name: iface,
      iface,
      batch: o.batch ?? 64,
      busyPollUs: o.busyPollUs ?? DEFAULT_BUSY_POLL_US,
      ...(o.netns ? { netns: o.netns } : {}),
    })),
    exports: o.export.map(parseExportSpec),
  };
}

function blockIoOption(v: string): BlockIoMode {
  if (!(BLOCK_IO_MODES as readonly string[]).includes(v))
    throw new AoegwError('ERR_USAGE', `--block-io ${v}: expected one of ${BLOCK_IO_MODES.join(', ')}`);
  return v as BlockIoMode;
}

/** A gateway with links and exports only. */
function targetOnly(cfg: TargetSpec): GatewaySpec {
  return {
    name: hostname(),
    stateFile: cfg.stateFile,
    links: cfg.links,
    exports: cfg.exports,
    forwards: [],
    peers: [],
    tunnel: { mtu: DEFAULT_TUNNEL_MTU, busyPollUs: 0, failAfterMs: DEFAULT_FAIL_AFTER_MS },
    ...(cfg.blockIo ? { blockIo: cfg.blockIo } : {}),
  };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve files or block devices as AoE targets (built-in target, durable writes by default)')
    .option('--config <file>', 'JSON config with links and exports (see docs/target.md)')
    .option(
      '--iface <name>',
      'interface to serve on (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--netns <name>', 'network namespace of the interfaces given with --iface')
    .option(
      '--export <spec>',
      'SHELF.SLOT=PATH[,ro][,sync|writeback|direct][,bufcnt=N][,offset=N][,length=N] (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--state <file>', 'state file for config strings, mask lists, reservations')
    .option(
      '--block-io <mode>',
      'auto (io_uring when the kernel offers it), ring, or sync (default auto; overrides the config file)',
      blockIoOption,
    )
    .option(
      '--busy-poll-us <us>',
      'poll this long after the last frame before sleeping (default 30, 0 = off)',
      intOption('--busy-poll-us', 0, 1000),
    )
    .option(...LOG_FORMAT_OPTION)
    .option(...LOG_LEVEL_OPTION)
    .action((o: ServeOpts) => {
      const root = openDaemonLog(o);
      if (o.config && (o.iface.length || o.export.length)) {
        throw new AoegwError('ERR_USAGE', 'use either --config or --iface/--export, not both');
      }
      const loaded = o.config ? loadTargetConfig(o.config) : configFromFlags(o);
      const cfg: TargetSpec = o.blockIo ? { ...loaded, blockIo: o.blockIo as BlockIoMode } : loaded;
      const log = root.child({ component: 'daemon' });
      // One daemon per state file, before any link or export opens.
      lockStateFile(cfg.stateFile);
      // Under systemd (Type=notify): watchdog pings from now, READY=1 after the ready line.
      let gw: Gateway | undefined;
      const systemd = openRunSystemd(() => gw, root.child({ component: 'systemd' }));
      // `serve` is the gateway daemon with no peers: one driver loop, one control plane.
      gw = Gateway.start(targetOnly(cfg), {
        log: root,
        ...(o.config ? { configFile: resolve(o.config) } : {}),
      });
      const server = gw;
      // Every handler before the ready line: a signal sent the moment "ready" (or READY=1) is seen
      // must find its handler, not the default action that ends the process.
      // The target's own counters, as before (scripts and tests read .engine.exports).
      process.on('SIGUSR1', () => stderrLine(`${JSON.stringify(server.target?.stats() ?? {})}\n`));
      let badInput: { stop(): void } | undefined;
      const stopped = new Promise<void>((resolve) => {
        let stopping = false;
        // A daemon's event loop empties only if every link stopped receiving: that is a failure,
        // and exit 0 would keep a supervisor (Restart=on-failure) from restarting us.
        process.on('beforeExit', () => {
          if (stopping) return;
          log.error('fatal: event loop emptied while serving (no link is receiving any more); exiting 1');
          try {
            server.stop();
          } catch (e) {
            log.error((e as Error).message);
          }
          process.exit(1);
        });
        const shutdown = (sig: string) => {
          stopping = true;
          log.info(`${sig}: stopping, completing writes`);
          systemd.stopping();
          badInput?.stop();
          server.stop();
          log.info('stopped');
          resolve();
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
      log.info(`ready: ${cfg.exports.length} exports on ${cfg.links.length} links (pid ${process.pid})`);
      systemd.ready();
      badInput = startBadInputReporter({
        stats: () => server.stats(),
        log: root.child({ component: 'input' }),
      });
      return stopped;
    });
}
