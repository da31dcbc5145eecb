/** The edit commands rewrite a config in its own style: the shipped configs come back byte for byte. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatJson, styleOf } from '../../../src/config/json-format.js';

const dir = join(import.meta.dirname, '..', '..', '..', 'deploy', 'config');

describe('formatJson', () => {
  it.each(readdirSync(dir).filter((f) => f.endsWith('.json')))('%s round-trips unchanged', (name) => {
    const text = readFileSync(join(dir, name), 'utf8');
    const value = JSON.parse(text);
    expect(styleOf(text, value)).toBe('compact');
    expect(formatJson(value)).toBe(text);
  });

  it('keeps a JSON.stringify-style file spread out', () => {
    const value = { peers: [{ name: 'a', allow: [] }], tunnel: { mtu: 1400 } };
    const text = `${JSON.stringify(value, null, 2)}\n`;
    expect(styleOf(text, value)).toBe('spread');
    expect(formatJson(value, 'spread')).toBe(text);
  });

  it('spreads what does not fit on a line', () => {
    const long = 'x'.repeat(130);
    expect(formatJson({ a: { path: long, b: [1, 2] }, c: [] })).toBe(
      `{\n  "a": {\n    "path": "${long}",\n    "b": [1, 2]\n  },\n  "c": []\n}\n`,
    );
  });
});
