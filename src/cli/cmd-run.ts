import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { loadKeyFile } from '../config/key-file.js';
import { startBadInputReporter } from '../control/bad-input.js';
import { stderrLine } from '../control/log.js';
import { type MetricsServer, serveMetrics } from '../control/metrics.js';
import { controlSocketOf } from '../control/notify.js';
import { type ControlHandler, ControlServer } from '../control/server.js';
import { statusHandlers } from '../control/status-view.js';
import type { PendingInvite } from '../enroll/enrollment-doc.js';
import { enrollmentPathOf } from '../enroll/enrollment-file.js';
import { AoegwError } from '../errors.js';
import { Gateway } from '../gateway/daemon.js';
import type { EnrollmentDesk } from '../gateway/enrollment-desk.js';
import { reloadFromFile } from '../gateway/reload-file.js';
import { lockStateFile } from '../io/daemon-lock.js';
import { loadCrypto } from '../tunnel/crypto.js';
import { LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, type LogCliOptions, openDaemonLog } from './daemon-log.js';
import { addEnrolledPeer, openEnrollmentDesk } from './run-enrollment.js';
import { exportEditHandlers } from './run-export-edit.js';
import { openRunSystemd } from './run-systemd.js';

export function registerRun(program: Command): void {
  program
    .command('run')
    .description(
      'run the gateway daemon: links, built-in exports, forwards, and peers over the encrypted tunnel',
    )
    .requiredOption('--config <file>', 'JSON gateway config (see docs/gateway.md)')
    .option(...LOG_FORMAT_OPTION)
    .option(...LOG_LEVEL_OPTION)
    .action(async (o: { config: string } & LogCliOptions) => {
      const root = openDaemonLog(o);
      const spec = loadGatewayConfig(o.config);
      const log = root.child({ component: 'daemon' });
      const reloadLog = root.child({ component: 'reload' });
      const enrollLog = root.child({ component: 'enrollment' });
      let keyPair: ReturnType<typeof loadKeyFile> | undefined;
      // A gateway that listens with a key opens its tunnel even without peers yet (an inviter
      // waiting for its first enrollment): a reload adds them.
      const tunnel =
        spec.peers.length > 0 || (spec.listen !== undefined && spec.privateKeyFile !== undefined);
      const crypto = tunnel ? await loadCrypto() : undefined;
      if (spec.privateKeyFile && crypto) keyPair = loadKeyFile(spec.privateKeyFile, crypto);
      // Invites are served by a gateway with a tunnel; a bad enrollment file refuses the start.
      const desk: EnrollmentDesk<PendingInvite> | null = tunnel
        ? openEnrollmentDesk(o.config, enrollmentPathOf(spec), enrollLog)
        : null;
      let gw: Gateway;
      // Unassigned (undefined) until the start returns; systemd asks for it only once ready.
      const systemd = openRunSystemd(() => gw, root.child({ component: 'systemd' }));
      // Invites may have changed as well as the config (`aoegw invite` asks for a reload).
      const reload = () =>
        systemd.reload(() => {
          try {
            desk?.reload();
          } catch (e) {
            reloadLog.error(
              `reload: enrollment file not re-read, keeping the invites known so far: ${(e as Error).message}`,
            );
          }
          return reloadFromFile(gw, o.config, loadGatewayConfig, reloadLog);
        });
      // The control socket first: it is this config's lock. A second daemon for the same config
      // (by hand beside systemd, a second start) stops here, before it opens a link or an export
      // and answers initiators beside the first. Until the gateway runs it says so.
      const starting = () => ({ ok: false as const, errors: ['the daemon is starting'] });
      const handlers: Record<string, ControlHandler> = { status: starting, reload: starting };
      // One daemon per config: the state file's lock, before anything else is opened.
      lockStateFile(spec.stateFile);
      // Its directory is the state file's by default, which the target would create anyway.
      mkdirSync(dirname(controlSocketOf(spec)), { recursive: true, mode: 0o700 });
      const control = await ControlServer.open({
        path: controlSocketOf(spec),
        log: root.child({ component: 'control' }),
        handlers,
      });
      try {
        gw = Gateway.start(spec, {
          configFile: resolve(o.config),
          ...(keyPair ? { keyPair } : {}),
          ...(crypto ? { crypto } : {}),
          log: root,
          ...(desk
            ? {
                enrollment: {
                  admit: (id, pk) => desk.admit(id, pk),
                  // Written to the file first, then this one peer is added to the running
                  // gateway (not the whole config: unrelated edits wait for their own reload).
                  pinned: (peer, id) =>
                    desk.pin(peer.publicKey, id, () =>
                      addEnrolledPeer(gw, o.config, peer.publicKey, enrollLog),
                    ),
                },
              }
            : {}),
        });
      } catch (e) {
        control.close();
        throw e;
      } finally {
        // The tunnel keeps its own copy; ours is zeroed at once.
        if (keyPair && crypto) crypto.memzero(keyPair.secretKey);
      }
      Object.assign(handlers, {
        reload: async () => {
          const r = reload();
          await r.done;
          return r.ok
            ? { ok: true, summary: r.summary, changes: r.changes }
            : { ok: false, errors: r.errors };
        },
        ...statusHandlers(gw, {
          name: spec.name,
          version: program.version() ?? '',
          invitesPending: () => desk?.pending ?? 0,
        }),
        ...exportEditHandlers(o.config, reload),
      });
      let metrics: MetricsServer | null = null;
      try {
        if (spec.metrics)
          metrics = await serveMetrics(
            spec.metrics,
            { stats: () => gw.stats(), enrollment: desk },
            root.child({ component: 'metrics' }),
          );
      } catch (e) {
        control.close();
        gw.stop();
        throw e;
      }
      // Handlers first, then the ready line: a signal sent as soon as "ready" is seen must find
      // them installed (without a listener, SIGHUP's default action ends the process).
      process.on('SIGUSR1', () => stderrLine(`${JSON.stringify(gw.stats(), bigintJson)}\n`));
      // Re-read the config; a bad one is logged, problem by problem, and the old one keeps running.
      process.on('SIGHUP', () => {
        reloadLog.info('SIGHUP: reloading the config');
        reload();
      });
      // SIGTERM/SIGINT too: a stop sent the moment "ready" (or READY=1) is seen must find its
      // handler, not the default action that ends the process without completing writes.
      let badInput: { stop(): void } | undefined;
      const stopped = new Promise<void>((resolve, reject) => {
        const shutdown = (sig: string) => {
          log.info(`${sig}: stopping, completing writes`);
          badInput?.stop();
          systemd.stopping();
          control.close();
          void metrics?.close();
          desk?.forget();
          try {
            gw.stop();
            log.info('stopped');
            resolve();
          } catch (e) {
            reject(e);
          }
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
        // A daemon whose event loop empties has lost its links: that is a failure, never exit 0.
        process.once('beforeExit', () =>
          reject(new AoegwError('ERR_GATEWAY', 'event loop emptied: every link and timer is gone')),
        );
      });
      const imports = spec.peers.reduce((n, p) => n + p.imports.length, 0);
      log.info(
        `ready: ${spec.exports.length} exports, ${imports} imports, ${spec.forwards.length} forwards, ` +
          `${spec.peers.length} peers on ${spec.links.length} links${gw.tunnel ? `, udp port ${gw.tunnel.localPort}` : ''} (pid ${process.pid})`,
      );
      systemd.ready();
      // Bad input is counted per frame; its warnings come at most once per reason per interval.
      badInput = startBadInputReporter({
        stats: () => gw.stats(),
        log: root.child({ component: 'input' }),
      });
      return stopped;
    });
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
