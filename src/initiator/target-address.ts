/** AoE target names as Linux shows them: eSHELF.SLOT (e.g. e1.2). */
import { AoegwError } from '../errors.js';

export interface TargetId {
  major: number;
  minor: number;
}

export function parseTargetId(text: string): TargetId {
  const m = /^e?(\d+)\.(\d+)$/.exec(text.trim());
  const major = m ? Number(m[1]) : Number.NaN;
  const minor = m ? Number(m[2]) : Number.NaN;
  if (!m || major > 0xfffe || minor > 0xfe) {
    throw new AoegwError(
      'ERR_USAGE',
      `target '${text}' is not eSHELF.SLOT with shelf 0..65534 and slot 0..254 (e.g. e1.2)`,
    );
  }
  return { major, minor };
}

export function formatTargetId(t: TargetId): string {
  return `e${t.major}.${t.minor}`;
}

export function targetKey(major: number, minor: number): number {
  return major * 256 + minor;
}
