/**
 * `aoegw run` under systemd (Type=notify): READY=1 once serving, RELOADING=1 … READY=1 around
 * every reload, STOPPING=1 at shutdown, WATCHDOG=1 pings, and a STATUS= line of what is up.
 * Without $NOTIFY_SOCKET every call is a no-op.
 */
import { SdNotify } from '../control/sd-notify.js';
import type { Gateway } from '../gateway/daemon.js';
import type { Log } from '../log.js';

export interface RunSystemd {
  readonly notify: SdNotify;
  /** The daemon serves (after its ready line): READY=1 and the status line from now on. */
  ready(): void;
  /** Runs one reload between RELOADING=1 and READY=1 (sent once it is in effect, or refused). */
  reload<R extends { ok: boolean; errors: readonly string[]; done: Promise<void> }>(apply: () => R): R;
  stopping(): void;
}

/**
 * Consumes the notify environment (unless given `notify`) and starts the watchdog pings at once:
 * start-up may take a while (exports opened, state files read).
 */
export function openRunSystemd(
  gateway: () => Gateway | undefined,
  log: Log,
  notify: SdNotify = SdNotify.open({ log }),
): RunSystemd {
  notify.startWatchdog();
  let started = false;
  let stopped = false;
  let reloading = 0;
  let refused: string | undefined;
  const status = () => {
    const gw = gateway();
    const line = gw ? statusLine(gw.stats()) : 'starting';
    return refused ? `${line}; last reload refused: ${refused}` : line;
  };
  return {
    notify,
    ready() {
      if (!notify.enabled) return;
      started = true;
      notify.ready(status());
      notify.trackStatus(status);
    },
    reload(apply) {
      // Reloads before READY=1 (an enrollment during start-up) are part of the start.
      if (!started || stopped || !notify.enabled) return apply();
      if (reloading++ === 0) notify.reloading('reloading the config');
      let r: ReturnType<typeof apply> | undefined;
      try {
        r = apply();
      } finally {
        const end = () => {
          // Overlapping reloads: READY=1 once the last one is done (none once stopping).
          if (--reloading === 0 && !stopped) notify.ready(status());
        };
        if (r) {
          const n = r.errors.length;
          refused = r.ok ? undefined : `${n} problem${n === 1 ? '' : 's'}, still running the previous config`;
          r.done.then(end, end);
        } else end();
      }
      return r;
    },
    stopping() {
      stopped = true;
      if (notify.enabled) notify.stopping('stopping, completing writes');
      notify.stop();
    },
  };
}

/** "2 exports, 1/2 peers up, 3/3 imports usable" from Gateway.stats(). */
export function statusLine(stats: object): string {
  const s = stats as {
    target?: { engine?: { exports?: Record<string, unknown> } } | null;
    peers?: { connected?: boolean }[];
    imports?: { list?: { usable?: boolean }[] } | null;
  };
  const exports = Object.keys(s.target?.engine?.exports ?? {}).length;
  const peers = s.peers ?? [];
  const up = peers.filter((p) => p.connected).length;
  const parts = [`${exports} export${exports === 1 ? '' : 's'}`, `${up}/${peers.length} peers up`];
  const list = s.imports?.list;
  if (list && list.length > 0)
    parts.push(`${list.filter((i) => i.usable).length}/${list.length} imports usable`);
  return parts.join(', ');
}
