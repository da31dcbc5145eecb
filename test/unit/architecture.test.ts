/**
 * The layer rule of DESIGN.md, checked on the real source: every relative import in src/ points
 * down the layer order (or stays inside its own folder). Order from the bottom:
 *   {errors.ts, log.ts}, {io, aoe}, initiator, target, tunnel, enroll, gateway, config, control, cli
 * io and aoe are peers: neither imports the other (the codec is pure; the drivers carry bytes).
 * Type-only imports count too: a type from a higher layer is still a dependency on it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

const RANK: Record<string, number> = {
  'errors.ts': 0,
  'log.ts': 0,
  io: 1,
  aoe: 1,
  initiator: 2,
  target: 3,
  tunnel: 4,
  enroll: 5,
  gateway: 6,
  config: 7,
  control: 8,
  cli: 9,
};

/** The layer of a path relative to src/: its top folder, or the file itself at the top. */
function layerOf(rel: string): string {
  return rel.split(sep)[0]!;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|cts)$/.test(name)) out.push(p);
  }
  return out;
}

/** Module specifiers of static imports/exports and dynamic import() calls. */
function importsOf(text: string): string[] {
  const specs: string[] = [];
  // Drop comments first so a commented-out import or an example in a doc comment does not count.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
  const re =
    /(?:\bimport|\bexport)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\bimport\s+['"]([^'"]+)['"]/g;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

interface Violation {
  file: string;
  spec: string;
  why: string;
}

/** Upward (or peer) imports among `files` (absolute paths under `root`). */
function violations(root: string, files: { path: string; text: string }[]): Violation[] {
  const out: Violation[] = [];
  for (const f of files) {
    const from = layerOf(relative(root, f.path));
    const rf = RANK[from];
    if (rf === undefined) {
      out.push({ file: f.path, spec: '', why: `${from} is not a layer of DESIGN.md` });
      continue;
    }
    for (const spec of importsOf(f.text)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = relative(root, resolve(dirname(f.path), spec));
      if (target.startsWith('..')) {
        out.push({ file: f.path, spec, why: 'imports from outside src/' });
        continue;
      }
      const to = layerOf(target.replace(/\.js$/, '.ts'));
      if (to === from) continue;
      const rt = RANK[to];
      if (rt === undefined) out.push({ file: f.path, spec, why: `${to} is not a layer` });
      else if (rt >= rf)
        out.push({ file: f.path, spec, why: `${from} (layer ${rf}) imports ${to} (layer ${rt})` });
    }
  }
  return out;
}

describe('layer order of src/', () => {
  it('every import in src/ points down the layers', () => {
    const files = sourceFiles(SRC).map((p) => ({ path: p, text: readFileSync(p, 'utf8') }));
    expect(files.length).toBeGreaterThan(50);
    // The scan sees real imports (guards against a regex that matches nothing).
    const total = files.reduce((n, f) => n + importsOf(f.text).length, 0);
    expect(total).toBeGreaterThan(200);
    expect(violations(SRC, files).map((v) => `${relative(SRC, v.file)}: '${v.spec}' ${v.why}`)).toEqual([]);
  });

  it('flags upward, peer and dynamic imports, and ignores comments and packages', () => {
    const f = (rel: string, text: string) => ({ path: join(SRC, rel), text });
    const found = violations(SRC, [
      f('target/server.ts', "import type { TargetConfig } from '../config/target-config.js';"),
      f('aoe/header.ts', "import { PacketLink } from '../io/packet-link.js';"),
      f('io/x.ts', "export { x } from '../aoe/constants.js';"),
      f('initiator/y.ts', "const m = await import('../tunnel/crypto.js');"),
      f(
        'target/ok.ts',
        "import { a } from '../aoe/index.js';\nimport { b } from './engine.js';\nimport c from 'convict';\n// import { d } from '../cli/main.js';\n/* import { e } from '../config/x.js'; */",
      ),
      f('cli/ok.ts', "import { AoegwError } from '../errors.js';\nimport { s } from '../target/server.js';"),
    ]);
    expect(found.map((v) => relative(SRC, v.file))).toEqual([
      join('target', 'server.ts'),
      join('aoe', 'header.ts'),
      join('io', 'x.ts'),
      join('initiator', 'y.ts'),
    ]);
  });
});
