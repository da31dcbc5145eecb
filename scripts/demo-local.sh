#!/usr/bin/env bash
# The demo: two network namespaces joined by a veth pair; vblade (the reference AoE target) serves
# a 256 MiB image in one, and aoegw's userspace initiator discovers, verifies and benchmarks it
# from the other; then aoegw's own built-in target serves a second image (durable writes) and the
# same initiator verifies it. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, raw sockets)" >&2; exit 1; }
bash scripts/setup.sh

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
NS_I="aoegw-demo-ini-$id" NS_T="aoegw-demo-tgt-$id" VA="vda$id" VB="vdb$id"
work=$(mktemp -d /dev/shm/aoegw-demo-XXXXXX)
vblade_pid=""
serve_pid=""
cleanup() {
  [ -n "$vblade_pid" ] && kill "$vblade_pid" 2>/dev/null && wait "$vblade_pid" 2>/dev/null || true
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  ip netns del "$NS_I" 2>/dev/null || true
  ip netns del "$NS_T" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$NS_I"; ip netns add "$NS_T"
ip link add "$VA" netns "$NS_I" type veth peer name "$VB" netns "$NS_T"
ip -n "$NS_I" link set "$VA" up; ip -n "$NS_T" link set "$VB" up
truncate -s 256M "$work/disk.img"
ip netns exec "$NS_T" vblade -b 64 1 2 "$VB" "$work/disk.img" >"$work/vblade.log" 2>&1 &
vblade_pid=$!
sleep 0.5

aoegw() { node dist/cli/main.js "$@" --iface "$VA" --netns "$NS_I"; }
echo "== aoegw discover (vblade e1.2 on the other side of a veth pair)"
aoegw discover --wait 500
echo; echo "== aoegw verify: write a 32 MiB pattern, flush, read it back"
aoegw verify --target e1.2 --size 32m --seed 42
echo; echo "== aoegw bench: sequential 1 MiB reads, queue depth 16, 3 s"
aoegw bench --target e1.2 --rw read --bs 1m --qd 16 --time 3
echo; echo "== aoegw bench: random 4 KiB reads, queue depth 16, 3 s"
aoegw bench --target e1.2 --rw randread --bs 4k --qd 16 --time 3

echo; echo "== aoegw serve: the built-in target exports a second image as e7.1 (sync: fdatasync before every write ack)"
truncate -s 64M "$work/built-in.img"
ip netns exec "$NS_T" node dist/cli/main.js serve --iface "$VB" --export "7.1=$work/built-in.img,sync" \
  --state "$work/state.json" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 50); do grep -q 'ready:' "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
aoegw discover --wait 500
aoegw verify --target e7.1 --size 16m --seed 7
kill -USR1 "$serve_pid"; sleep 0.3
# SIGUSR1 made the target print a JSON stats snapshot on stderr: show e7.1's counters.
grep '^{"engine"' "$work/serve.log" | tail -1 | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const e = JSON.parse(s).engine.exports["e7.1"];
    console.log(`e7.1 counters (SIGUSR1): ${e.writes} writes in ${e.store.writev} writev calls and ${e.store.commits} fdatasyncs,` +
      ` ${e.reads} reads in ${e.store.readv} readv calls, ${Object.keys(e.initiators).length} initiator(s)`);
  });'
echo; echo "demo: done (namespaces, vblade, aoegw serve and the images are removed on exit)"
