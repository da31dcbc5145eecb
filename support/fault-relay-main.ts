/**
 * The fault relay process: carries UDP between two sides with injected loss, duplication,
 * reordering, delay, blackouts and a size limit (the kernel here has no sch_netem). Meant for the
 * router namespace of the two-site topology, between the gateways' tunnel endpoints:
 *
 *   ip netns exec ROUTER node --expose-gc --import tsx support/fault-relay-main.ts \
 *     --a-side 10.91.1.1:7790 --a-peer 10.91.1.2:7788 --b-side 10.91.2.1:7790 --b-peer 10.91.2.2:7788 \
 *     --drop 5 --dup 5 --reorder 10 --delay 20 --jitter 10 --max-size 1400 --seed 1
 *
 * Prints "relay ready a=IP:PORT b=IP:PORT" once bound, then takes JSON commands on stdin
 * (docs/fault-relay.md). Exits 0 on SIGTERM, SIGINT or the end of stdin; 2 on bad arguments; 1 when
 * it cannot bind.
 */
import { isIPv6 } from 'node:net';
import { createInterface } from 'node:readline';
import type { UdpEndpoint } from '../src/io/udp-address.js';
import { UdpLink } from '../src/io/udp-link.js';
import { FaultRelayEngine } from './fault-relay-engine.js';
import {
  type ControlCommand,
  parseControl,
  parseRelayArgs,
  readyLine,
  USAGE,
} from './fault-relay-protocol.js';

function fail(code: number, message: string): never {
  process.stderr.write(`fault-relay: ${message}\n`);
  process.exit(code);
}

function main(): void {
  let args: ReturnType<typeof parseRelayArgs>;
  try {
    args = parseRelayArgs(process.argv.slice(2));
  } catch (e) {
    fail(2, `${(e as Error).message}\n${USAGE}`);
  }
  const links: UdpLink[] = [];
  const open = (ep: UdpEndpoint) => {
    const link = UdpLink.open({
      family: isIPv6(ep.address.split('%')[0]!) ? 6 : 4,
      address: ep.address,
      port: ep.port,
      batch: args.batch,
      // Whatever a peer sends must arrive whole: the largest UDP datagram.
      maxDatagram: 65535,
      // On a busy machine the relay is now and then descheduled for tens of ms; it must lose only
      // what it is told to, so the receive buffer holds a few hundred ms of tunnel traffic.
      rcvbuf: 32 << 20,
      sndbuf: 8 << 20,
    });
    links.push(link);
    return link;
  };
  let aLink: UdpLink;
  let bLink: UdpLink;
  try {
    aLink = open(args.aSide);
    bLink = open(args.bSide);
  } catch (e) {
    for (const l of links) l.close();
    fail(1, (e as Error).message);
  }

  let lastLogMs = 0;
  let unlogged = 0;
  const engine = new FaultRelayEngine({
    aLink,
    bLink,
    aPeer: args.aPeer,
    bPeer: args.bPeer,
    seed: args.seed,
    faults: args.faults,
    onError: (err) => {
      // At most one line a second: a peer that is gone makes every send fail.
      const now = Date.now();
      if (now - lastLogMs < 1000) {
        unlogged++;
        return;
      }
      const more = unlogged > 0 ? ` (and ${unlogged} more since the last)` : '';
      process.stderr.write(`fault-relay: ${err.message}${more}\n`);
      lastLogMs = now;
      unlogged = 0;
    },
  });
  engine.start();

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    engine.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The launcher going away closes our stdout pipe: that is the end, not a crash.
  process.stdout.on('error', stop);

  const reply = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  const run = (cmd: ControlCommand) => {
    if ('set' in cmd) {
      engine.set(cmd.set);
      reply({ ok: 'set' });
    } else if ('blackout' in cmd) {
      engine.blackout(cmd.blackout);
      reply({ ok: 'blackout' });
    } else {
      reply({ stats: engine.stats() });
    }
  };
  const input = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  input.on('line', (line) => {
    if (line.trim() === '') return;
    try {
      run(parseControl(line));
    } catch (e) {
      reply({ error: (e as Error).message });
    }
  });
  input.on('close', stop);

  // Start-up (tsx's transpiling, the arenas) leaves garbage whose collection would otherwise stall
  // the first second of traffic, and with it a delay or throughput measurement. Run with
  // --expose-gc (the launcher does) to collect it now.
  (globalThis as { gc?: () => void }).gc?.();
  process.stdout.write(
    `${readyLine(
      { address: aLink.localAddress, port: aLink.localPort },
      { address: bLink.localAddress, port: bLink.localPort },
    )}\n`,
  );
}

main();
