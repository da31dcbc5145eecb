/** The shipped example config must load with the same validation the daemon uses. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTargetConfig } from '../../../src/config/target-config.js';

describe('deploy/config/target.json', () => {
  it('is a valid target config', () => {
    const c = loadTargetConfig(
      join(import.meta.dirname, '..', '..', '..', 'deploy', 'config', 'target.json'),
    );
    expect(c.exports.map((e) => `${e.shelf}.${e.slot}:${e.durability}:${e.readOnly}`)).toEqual([
      '1.0:sync:false',
      '1.1:direct:false',
      '1.2:sync:true',
    ]);
  });
});
