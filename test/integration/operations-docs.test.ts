/**
 * docs/operations.md shows commands an operator will paste: each `aoegw …` line in its code
 * blocks must name a command that exists, with only options that command declares (checked
 * against the built CLI's own --help), and its example configs must pass `aoegw config check`.
 * The enrollment walk-through itself runs end to end in enrollment.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AOEGW, ROOT } from '../helpers/aoegw.js';

const md = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
const blocks = [...md.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, text: m[2]! }));

function help(path: string[]): string {
  const r = spawnSync(process.execPath, [AOEGW, ...path, '--help'], { encoding: 'utf8', timeout: 30_000 });
  return r.stdout;
}

/** Command words of an `aoegw` line: the words before the first option or argument that is not a subcommand. */
function commandLines(): string[][] {
  return (
    blocks
      .filter((b) => b.lang === 'sh')
      .flatMap((b) => b.text.split('\n'))
      .map((l) => l.trim())
      .filter((l) => l.startsWith('aoegw '))
      .map((l) =>
        l
          .replace(/\s*[<>|&].*$/, '')
          .split(/\s+/)
          .slice(1),
      )
      // `aoegw --help` is the program's own help, not a command.
      .filter((w) => w[0] !== '--help')
  );
}

describe('docs/operations.md', () => {
  it('every aoegw command shown exists with the options shown', () => {
    const lines = commandLines();
    expect(lines.length).toBeGreaterThanOrEqual(12);
    const cache = new Map<string, string>();
    for (const words of lines) {
      // The longest prefix of words that is a command (its help starts with "Usage: aoegw <path>").
      let path: string[] = [];
      for (let n = 1; n <= Math.min(3, words.length); n++) {
        const p = words.slice(0, n).filter((w) => !w.startsWith('-'));
        if (p.length < n) break;
        const key = p.join(' ');
        if (!cache.has(key)) cache.set(key, help(p));
        if (new RegExp(`^Usage: aoegw ${key}\\b`).test(cache.get(key)!)) path = p;
      }
      expect(path.length, `no such command: aoegw ${words.join(' ')}`).toBeGreaterThan(0);
      const text = cache.get(path.join(' '))!;
      for (const opt of words.filter((w) => w.startsWith('--'))) {
        expect(text, `aoegw ${path.join(' ')} has no ${opt}`).toMatch(new RegExp(`${opt}\\b`));
      }
    }
  });

  it('the example configs pass config check (with their paths moved to a temp dir)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aoegw-opsdoc-'));
    try {
      const json = blocks.filter((b) => b.lang === 'json').map((b) => JSON.parse(b.text));
      expect(json.map((c) => c.name)).toEqual(['site-b', 'site-a', 'store']);
      for (const c of json) {
        c.stateFile = join(dir, c.name, 'state.json');
        const file = join(dir, `${c.name}.json`);
        writeFileSync(file, JSON.stringify(c));
        const r = spawnSync(process.execPath, [AOEGW, 'config', 'check', file], { encoding: 'utf8' });
        expect(r.status, r.stdout + r.stderr).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
