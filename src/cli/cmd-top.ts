/**
 * `aoegw top`: a live view of the running daemon's exports and their initiators, redrawn every
 * interval from the control socket (like iotop for AoE), with the p99 service time of each
 * interval. Keys: s cycles the sort, q or Ctrl-C quits. Only two escape codes are used (cursor
 * home, clear screen), so any terminal of 80×24 or more shows it; the terminal's mode is restored
 * however it ends.
 */
import type { Command } from 'commander';
import type { ExportView } from '../control/status-view.js';
import { AoegwError } from '../errors.js';
import { ask } from './cmd-status.js';
import { socketOf } from './socket-of.js';
import { renderTop, type Sample, SORT_KEYS, type SortKey } from './top-view.js';

const HOME_CLEAR = '\x1b[H\x1b[2J';

export function registerTop(program: Command): void {
  program
    .command('top')
    .description(
      'live per-export and per-initiator IOPS, MB/s and p99 service time of the running daemon (keys: s sort, q quit)',
    )
    .requiredOption('--config <file>', 'the config file the daemon runs')
    .option('--sort <key>', `first sort order: ${SORT_KEYS.join('|')}`, 'iops')
    .option('--interval <seconds>', 'seconds between samples', '1')
    .action(async (o: { config: string; sort: string; interval: string }) => {
      if (!(SORT_KEYS as readonly string[]).includes(o.sort)) {
        throw new AoegwError('ERR_USAGE', `--sort must be one of ${SORT_KEYS.join(', ')}, got '${o.sort}'`);
      }
      const intervalS = Number(o.interval);
      if (!Number.isFinite(intervalS) || intervalS < 0.1 || intervalS > 3600) {
        throw new AoegwError('ERR_USAGE', `--interval must be seconds in 0.1..3600, got '${o.interval}'`);
      }
      const path = socketOf(o.config);
      const sample = async (): Promise<Sample> => {
        const r = await ask(path, ['status', 'exports'] as const, o.config);
        return {
          sampledAtMs: r.exports.sampledAtMs as number,
          status: r.status,
          exports: r.exports.exports as ExportView[],
        };
      };
      // The first sample before touching the terminal: no daemon → one message, exit 1.
      const first = await sample();
      await runScreen(sample, first, o.sort as SortKey, intervalS);
    });
}

function runScreen(
  sample: () => Promise<Sample>,
  first: Sample,
  sort0: SortKey,
  intervalS: number,
): Promise<void> {
  const stdin = process.stdin;
  const out = process.stdout;
  const raw = stdin.isTTY === true;
  let sort = sort0;
  let prev: Sample | null = null;
  let cur = first;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let done = false;
  return new Promise<void>((resolve, reject) => {
    const draw = () => {
      if (done) return;
      const lines = renderTop(prev, cur, sort, out.columns || 80, out.rows || 24, intervalS);
      out.write(HOME_CLEAR + lines.join('\r\n'));
    };
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      stdin.off('data', onKey);
      out.off('resize', draw);
      process.off('SIGINT', quit);
      process.off('SIGTERM', quit);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      out.write('\r\n');
      if (err) reject(err);
      else resolve();
    };
    const quit = () => finish();
    const onKey = (key: Buffer) => {
      for (const ch of key.toString('latin1')) {
        if (ch === 'q' || ch === 'Q' || ch === '\x03' || ch === '\x04') return finish();
        if (ch === 's' || ch === 'S') {
          sort = SORT_KEYS[(SORT_KEYS.indexOf(sort) + 1) % SORT_KEYS.length]!;
          draw();
        }
      }
    };
    const tick = async () => {
      try {
        const s = await sample();
        if (done) return;
        prev = cur;
        cur = s;
        draw();
        timer = setTimeout(tick, intervalS * 1000);
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
      }
    };
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
    out.on('resize', draw);
    process.on('SIGINT', quit);
    process.on('SIGTERM', quit);
    draw();
    timer = setTimeout(tick, intervalS * 1000);
  });
}
