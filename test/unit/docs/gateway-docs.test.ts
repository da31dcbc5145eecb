/**
 * The gateway's docs repeat what the code and the shipped files say: the PeerMessage schema in
 * docs/protocol.md section 13 is the one the code parses, and the two-site example in
 * docs/gateway.md is the pair in deploy/config/. A change to one without the other fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PEER_MESSAGES_PROTO,
  RECORD_AOE_REQUEST,
  RECORD_AOE_RESPONSE,
  RECORD_CONTROL,
} from '../../../src/gateway/peer-messages.js';

const root = join(import.meta.dirname, '..', '..', '..');
const read = (...p: string[]) => readFileSync(join(root, ...p), 'utf8');

function codeBlocks(md: string, lang: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g');
  for (let m = re.exec(md); m !== null; m = re.exec(md)) out.push(m[1]!);
  return out;
}

describe('docs/protocol.md, section 13 (gateway records)', () => {
  const md = read('docs', 'protocol.md');
  const section = md.slice(md.indexOf('## 13. Gateway records'));

  it('repeats the PeerMessage schema verbatim', () => {
    const schemas = codeBlocks(section, 'proto');
    expect(schemas).toHaveLength(1);
    expect(schemas[0]!.trim()).toBe(PEER_MESSAGES_PROTO.trim());
  });

  it('numbers the record types as the code does', () => {
    expect(section).toContain(`| ${RECORD_CONTROL} | CONTROL |`);
    expect(section).toContain(`| ${RECORD_AOE_REQUEST} | AOE_REQUEST |`);
    expect(section).toContain(`| ${RECORD_AOE_RESPONSE} | AOE_RESPONSE |`);
  });
});

describe('docs/gateway.md', () => {
  it('shows the two-site pair of deploy/config/ as it is', () => {
    const examples = codeBlocks(read('docs', 'gateway.md'), 'json').map((b) => JSON.parse(b));
    expect(examples).toEqual([
      JSON.parse(read('deploy', 'config', 'gateway-a.json')),
      JSON.parse(read('deploy', 'config', 'gateway-b.json')),
    ]);
  });
});
