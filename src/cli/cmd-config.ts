/**
 * `aoegw config check FILE`: every problem of a gateway config (with its enrollment file's peers)
 * or of a target config, at once; exit 0 with a one-line summary when there is none, 1 otherwise.
 */
import type { Command } from 'commander';
import { checkGatewayDoc } from '../config/gateway-config.js';
import { checkTargetDoc, readConfigDoc } from '../config/target-config.js';
import { Problems } from '../config/validate.js';
import { AoegwError } from '../errors.js';
import type { GatewaySpec } from '../gateway/gateway-spec.js';
import type { TargetSpec } from '../target/spec.js';

const TARGET_KEYS = ['stateFile', 'links', 'exports', 'blockIo'];

type Kind = 'auto' | 'gateway' | 'target';

export function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function gatewaySummary(s: GatewaySpec): string {
  const enrolled = s.peers.filter((p) => p.source === 'enrolled').length;
  const imports = s.peers.reduce((n, p) => n + p.imports.length, 0);
  return [
    plural(s.links.length, 'link'),
    plural(s.exports.length, 'export'),
    plural(s.forwards.length, 'forward'),
    `${plural(s.peers.length, 'peer')}${enrolled ? ` (${enrolled} enrolled)` : ''}`,
    plural(imports, 'import'),
  ].join(', ');
}

function targetSummary(s: TargetSpec): string {
  return `${plural(s.links.length, 'link')}, ${plural(s.exports.length, 'export')}`;
}

/** Checks `file`; the report's lines and whether it is valid. */
export function checkConfigFile(file: string, kind: Kind): { ok: boolean; report: string } {
  const p = new Problems();
  const doc = readConfigDoc(p, file);
  if (!doc) return { ok: false, report: p.message(file) };
  // A file with only the target's keys is what `aoegw serve --config` reads; anything else is a
  // gateway config (unknown keys are reported as the gateway's).
  const as =
    kind !== 'auto' ? kind : Object.keys(doc).every((k) => TARGET_KEYS.includes(k)) ? 'target' : 'gateway';
  const summary =
    as === 'gateway'
      ? `valid gateway config (aoegw run): ${gatewaySummary(checkGatewayDoc(p, doc))}`
      : `valid target config (aoegw serve${kind === 'auto' ? '; --kind gateway checks it for aoegw run' : ''}): ${targetSummary(checkTargetDoc(p, doc))}`;
  if (p.count > 0) return { ok: false, report: p.message(file) };
  return { ok: true, report: `config ${file}: ${summary}` };
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('check configuration files');
  config
    .command('check')
    .description(
      'report every problem of a config file (a gateway config with its enrollment file, or a target config): exit 0 when valid, 1 when not',
    )
    .argument('<file>', 'the JSON config file')
    .option('--kind <kind>', 'auto (by its keys), gateway (aoegw run) or target (aoegw serve)', 'auto')
    .action((file: string, o: { kind: string }) => {
      if (o.kind !== 'auto' && o.kind !== 'gateway' && o.kind !== 'target')
        throw new AoegwError('ERR_USAGE', `--kind ${o.kind}: expected auto, gateway or target`);
      const { ok, report } = checkConfigFile(file, o.kind);
      process.stdout.write(`${report}\n`);
      if (!ok) process.exitCode = 1;
    });
}
