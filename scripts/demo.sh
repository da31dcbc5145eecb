#!/usr/bin/env bash
# The two-site demo: an initiator segment and a target segment joined by two aoegw gateways across
# a router, each in its own network namespace:
#   ini ──L2── gateway A ══ UDP, Noise IK, ChaCha20-Poly1305 ══ router ══ gateway B ──L2── vblade e1.0
#                                                                               └── built-in export e1.1
# Gateway A presents B's targets as e7.0 (vblade, forwarded) and e7.1 (built-in, named disk-b1).
# aoegw's initiator discovers both through A, verifies and benchmarks them; tcpdump on the router
# shows that only UDP crosses it: no AoE frame and no plaintext of the data written.
# Everything it creates is removed on exit. `bash scripts/demo-local.sh` is the one-segment demo.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, raw sockets)" >&2; exit 1; }
bash scripts/setup.sh
command -v tcpdump >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null; }

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
P="aoegw-demo-$id"
NS=("$P-ini" "$P-gwa" "$P-rtr" "$P-gwb" "$P-tgt")
work=$(mktemp -d /dev/shm/aoegw-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

for n in "${NS[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
veth() { ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"; ip -n "$1" link set "$2" up; ip -n "$3" link set "$4" up; }
veth "$P-ini" ini0 "$P-gwa" lan
veth "$P-gwa" wan "$P-rtr" ra
veth "$P-rtr" rb "$P-gwb" wan
veth "$P-gwb" lan "$P-tgt" tgt0
ip -n "$P-gwa" addr add 10.91.1.2/24 dev wan; ip -n "$P-rtr" addr add 10.91.1.1/24 dev ra
ip -n "$P-rtr" addr add 10.91.2.1/24 dev rb; ip -n "$P-gwb" addr add 10.91.2.2/24 dev wan
ip -n "$P-gwa" route add default via 10.91.1.1; ip -n "$P-gwb" route add default via 10.91.2.1
ip netns exec "$P-rtr" sysctl -qw net.ipv4.ip_forward=1

truncate -s 256M "$work/vblade.img" "$work/disk-b1.img"
install -m 600 keys-example/gateway-a.key "$work/a.key"; install -m 600 keys-example/gateway-b.key "$work/b.key"
cat >"$work/b.json" <<JSON
{ "name": "gw-b", "privateKeyFile": "$work/b.key", "listen": "10.91.2.2:7788", "stateFile": "$work/b-state.json",
  "links": [{ "name": "lan", "iface": "lan" }],
  "exports": [{ "target": "1.1", "path": "$work/disk-b1.img", "name": "disk-b1" }],
  "forwards": [{ "link": "lan", "targets": ["1.0"] }],
  "peers": [{ "name": "a", "publicKey": "$(cat keys-example/gateway-a.pub)",
              "allow": [{ "targets": ["1.0", "disk-b1"], "access": "rw" }] }] }
JSON
cat >"$work/a.json" <<JSON
{ "name": "gw-a", "privateKeyFile": "$work/a.key", "listen": "10.91.1.2:7788", "stateFile": "$work/a-state.json",
  "links": [{ "name": "lan", "iface": "lan" }],
  "peers": [{ "name": "b", "publicKey": "$(cat keys-example/gateway-b.pub)", "endpoint": "10.91.2.2:7788",
              "imports": [{ "remote": "1.0", "local": "7.0" }, { "remote": "disk-b1", "local": "7.1" }] }] }
JSON

ip netns exec "$P-tgt" vblade -b 64 1 0 tgt0 "$work/vblade.img" >"$work/vblade.log" 2>&1 & pids+=($!)
ip netns exec "$P-rtr" tcpdump -i ra -nn -U -w "$work/routed.pcap" >/dev/null 2>&1 & pids+=($!)
ip netns exec "$P-gwb" node dist/cli/main.js run --config "$work/b.json" 2>"$work/b.log" & pids+=($!)
ip netns exec "$P-gwa" node dist/cli/main.js run --config "$work/a.json" 2>"$work/a.log" & pids+=($!)
echo "== waiting for gateway A to present B's targets"
for _ in $(seq 150); do grep -q 'import e7.0 .*usable' "$work/a.log" && grep -q 'import e7.1 .*usable' "$work/a.log" && break; sleep 0.1; done
grep -h -E 'ready|session up|usable|found at' "$work/b.log" "$work/a.log" | sed 's/^/   /'

aoegw() { ip netns exec "$P-ini" node dist/cli/main.js "$@"; }
echo; echo "== aoegw discover on the initiator segment (both targets answer from gateway A's MAC)"
aoegw discover --iface ini0 --wait 1000
for t in e7.0 e7.1; do
  echo; echo "== $t: verify 32 MiB through the encrypted path, then sequential 1 MiB reads and random 4 KiB reads (qd 16, 3 s)"
  aoegw verify --iface ini0 --target "$t" --size 32m --seed 42
  aoegw bench --iface ini0 --target "$t" --rw read --bs 1m --qd 16 --time 3 | grep -E 'throughput|latency'
  aoegw bench --iface ini0 --target "$t" --rw randread --bs 4k --qd 16 --time 3 | grep -E 'throughput|latency'
done

sleep 0.5; kill "${pids[1]}" 2>/dev/null; wait "${pids[1]}" 2>/dev/null || true
echo; echo "== what crossed the router (tcpdump on its site-A interface)"
udp=$(tcpdump -r "$work/routed.pcap" -nn udp 2>/dev/null | wc -l)
aoe=$(tcpdump -r "$work/routed.pcap" -nn 'ether proto 0x88a2' 2>/dev/null | wc -l)
echo "   UDP datagrams: $udp, AoE (EtherType 0x88A2) frames: $aoe"
node --input-type=module -e "
  import { readFileSync } from 'node:fs';
  const { fillPattern } = await import('./dist/initiator/pattern.js');
  const cap = readFileSync('$work/routed.pcap');
  let found = 0;
  for (const lba of [100, 5000, 60000]) {
    const s = Buffer.alloc(512); fillPattern(s, 0, lba, 1, 42);
    if (cap.indexOf(s.subarray(64, 128)) >= 0) found++;
  }
  console.log('   plaintext of the verified data in the capture: ' + (found ? 'FOUND (' + found + ' sectors)' : 'not found'));
  if (found) process.exit(1);"
[ "$aoe" -eq 0 ] || { echo "demo: AoE frames crossed the router" >&2; exit 1; }
echo; echo "demo: done (namespaces, vblade, both gateways and the images are removed on exit)"
