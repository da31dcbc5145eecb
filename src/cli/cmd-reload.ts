import type { Command } from 'commander';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { controlRequest } from '../control/client.js';
import { controlSocketOf } from '../control/notify.js';
import { AoegwError } from '../errors.js';

export function registerReload(program: Command): void {
  program
    .command('reload')
    .description(
      'make the running daemon re-read its config (as SIGHUP does) and report what changed; a config with errors changes nothing',
    )
    .requiredOption('--config <file>', 'the config file the daemon runs')
    .action(async (o: { config: string }) => {
      // Validate here first: the operator sees every problem even when no daemon runs.
      const spec = loadGatewayConfig(o.config);
      const r = await controlRequest(controlSocketOf(spec), { cmd: 'reload' }, 30_000);
      if (!r.ok) {
        throw new AoegwError(
          'ERR_CONFIG',
          `the daemon kept its running configuration:\n  ${r.errors.join('\n  ')}`,
        );
      }
      process.stdout.write(`reloaded${typeof r.summary === 'string' ? `: ${r.summary}` : ''}\n`);
    });
}
