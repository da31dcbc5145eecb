/**
 * docs/fault-relay.md repeats what the code says: its fault table names every setting, with the
 * command-line flag the relay reads and the default the plan starts from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type FaultSettings, NO_FAULTS } from '../../../support/fault-plan.js';
import { faultFlags } from '../../../support/fault-relay-protocol.js';

const md = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'fault-relay.md'), 'utf8');

describe('docs/fault-relay.md', () => {
  // Rows like: | `delayMs` | `--delay` | ... and | `reorderAfter` (3) | `--reorder-after` | ...
  const rows = [...md.matchAll(/^\| `(\w+)`(?: \((\d+)\))? \| `--([\w-]+)` \|/gm)].map((m) => ({
    key: m[1] as keyof FaultSettings,
    defaultValue: m[2],
    flag: m[3],
  }));

  it('lists every fault setting once, with its flag', () => {
    expect(rows.map((r) => r.key).sort()).toEqual(Object.keys(NO_FAULTS).sort());
    for (const r of rows) expect(faultFlags({ [r.key]: 1 })).toEqual([`--${r.flag}`, '1']);
  });

  it('gives the defaults that are not zero, and only those', () => {
    for (const r of rows) {
      expect(r.defaultValue === undefined ? 0 : Number(r.defaultValue), r.key).toBe(NO_FAULTS[r.key]);
    }
  });
});
