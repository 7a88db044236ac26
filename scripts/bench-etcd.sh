#!/usr/bin/env bash
# Benchmark etcd 3.4 (Debian bookworm's etcd-server) with Copycat's workload, for
# the comparison in docs/BENCHMARKS.md: a 3-member cluster on 127.0.0.1 with
# etcd's default durable WAL (fsync on every commit batch), driven by
# bench/etcd/driver.go (closed-loop clients, 256-byte values).
#
#   scripts/bench-etcd.sh [OUT.jsonl]        (default: bench-results/etcd.jsonl)
#
# Environment:
#   BENCH_SECONDS   measured seconds per run (default 10)
#   BENCH_WARMUP    warm-up seconds per run (default 2)
#   BENCH_CLIENTS   client counts for the put runs (default "1 16 64 100")
#   BENCH_READ_CLIENTS  client count for the read runs (default 16)
#   BENCH_KEYS      key space (default 10000)
#   BENCH_ETCD_CONNS  clientv3 clients (connections) the client goroutines share
#                   (default 2: as many as copycat-bench's client threads, each of
#                   which reaches a server over one connection); 0: one per client
#   BENCH_DIR       parent of the temporary data dir (default: $TMPDIR or /tmp);
#                   must not be a tmpfs, or fsync means nothing
#   BENCH_KEEP=1    keep the data dir and etcd logs
#
# Installs etcd-server, etcd-client, golang-go and golang-etcd-server-dev with
# apt-get if missing. Builds the driver offline in GOPATH mode against the Go
# sources Debian installs under /usr/share/gocode (no module downloads).
# Starts only its own etcd processes, on free ports, and stops them on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-bench-results/etcd.jsonl}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
put_clients=${BENCH_CLIENTS:-1 16 64 100}
read_clients=${BENCH_READ_CLIENTS:-16}
keys=${BENCH_KEYS:-10000}
conns=${BENCH_ETCD_CONNS:-2}
parent=${BENCH_DIR:-${TMPDIR:-/tmp}}
script_start=$(date +%s)

log() { printf '[bench-etcd] %s\n' "$*" >&2; }

# ---- packages -------------------------------------------------------------
need=()
for p in etcd-server etcd-client golang-go golang-etcd-server-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# Debian's postinst may start a system etcd service on 2379; we never use or touch it.

etcd_ver=$(etcd --version | sed -n 's/^etcd Version: //p')
go_ver=$(go version | awk '{print $3}')
log "etcd $etcd_ver, $go_ver"

# ---- work dir and cleanup ---------------------------------------------------
mkdir -p "$parent"
work=$(mktemp -d "$parent/copycat-bench-etcd.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n ${drv:-} ]] && kill -TERM "$drv" 2>/dev/null  # timeout passes it on to the driver
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$out.tmp"
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(df -PT "$work" | awk 'NR==2{print $2}')
case $fstype in
  tmpfs|ramfs) log "$work is on $fstype: fsync would not reach a disk; set BENCH_DIR"; exit 1 ;;
esac

# ---- build the driver offline -------------------------------------------------
# GOPATH mode: imports resolve to /usr/share/gocode/src (golang-etcd-server-dev
# and its dependencies); GOPROXY=off guarantees nothing is fetched.
log "building bench/etcd/driver.go"
export GOCACHE=${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/copycat-bench-etcd-go}
GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= \
  go build -o "$work/driver" "$repo/bench/etcd/driver.go"

# ---- machine ----------------------------------------------------------------
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
dev=$(df -P "$work" | awk 'NR==2{print $1}')
disk="$dev ($fstype)"
if command -v lsblk >/dev/null; then
  extra=$(lsblk -ndo TYPE,ROTA,SIZE,MODEL "$dev" 2>/dev/null | awk '{$1=$1};1' || true)
  [[ -n $extra ]] && disk="$disk type/rota/size/model: $extra"
fi
jesc() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
machine=$(printf '{"nproc":%s,"cpu":"%s","kernel":"%s","disk":"%s","go":"%s","etcd":"%s","load_before":"%s"}' \
  "$(nproc)" "$(jesc "$cpu")" "$(uname -r)" "$(jesc "$disk")" "$go_ver" "$etcd_ver" \
  "$load_before")

# ---- free ports ---------------------------------------------------------------
listening=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
port_free() { ! grep -qx "$1" <<<"$listening"; }
base=
for _ in $(seq 50); do
  b=$((20000 + RANDOM % 30000))
  ok=1
  for i in 0 1 2 3 4 5; do port_free $((b + i)) || { ok=0; break; }; done
  if ((ok)); then base=$b; break; fi
done
[[ -n $base ]] || { log "no free ports found"; exit 1; }

# ---- start the cluster ----------------------------------------------------------
cluster=
endpoints=
for i in 1 2 3; do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 2 * i - 1))"
  endpoints+="${endpoints:+,}127.0.0.1:$((base + 2 * i - 2))"
done
token="copycat-bench-$$-$RANDOM"
for i in 1 2 3; do
  cport=$((base + 2 * i - 2)) pport=$((base + 2 * i - 1))
  etcd --name "m$i" --data-dir "$work/m$i" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "$cluster" --initial-cluster-token "$token" --initial-cluster-state new \
    --logger zap --log-outputs stderr \
    >"$work/m$i.log" 2>&1 &
  pids+=($!)
done
log "etcd members ${pids[*]} on $endpoints, data in $work"

healthy=0
for _ in $(seq 60); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { log "etcd $pid died:"; tail -n 20 "$work"/m*.log >&2; exit 1; }
  done
  if ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=2s endpoint health >/dev/null 2>&1; then
    healthy=1; break
  fi
  sleep 0.5
done
((healthy)) || { log "cluster not healthy after 30 s"; tail -n 20 "$work"/m*.log >&2; exit 1; }
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" -w table endpoint status >&2

# ---- runs ---------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
: >"$out.tmp"
drv=
run() { # op clients [driver flags...]
  local op=$1 clients=$2; shift 2
  log "$op, $clients clients: ${warmup} s warm-up + ${seconds} s"
  # In the background + wait, so that a signal to this script is handled at once.
  timeout $((warmup + seconds + 180)) "$work/driver" --endpoints "$endpoints" --op "$op" \
    --clients "$clients" --duration "${seconds}s" --warmup "${warmup}s" --value-bytes 256 \
    --keys "$keys" --conns "$conns" --machine-json "$machine" "$@" >"$work/run.json" &
  drv=$!
  wait "$drv"
  drv=
  cat "$work/run.json" >&2
  cat "$work/run.json" >>"$out.tmp"
}
for c in $put_clients; do run put "$c"; done
run get-linearizable "$read_clients"
run get-serializable "$read_clients" --fill=false  # keys already written
mv "$out.tmp" "$out"

# ---- report ---------------------------------------------------------------------
if ((conns > 0)); then
  conns_text="the closed-loop clients share $conns clientv3 clients (TCP connections; fewer when there are fewer clients)"
else
  conns_text="one clientv3 client (TCP connection) per closed-loop client"
fi
cat <<EOF

## etcd $etcd_ver, 3 members on 127.0.0.1 (default durable WAL), $(date -u +%Y-%m-%dT%H:%MZ)

- machine: $(nproc) cores, $cpu, kernel $(uname -r)
- disk of the data dir: $disk
- driver: bench/etcd/driver.go built with $go_ver (GOPATH mode, Debian sources); $conns_text, all to the leader
- each run: ${warmup} s warm-up, ${seconds} s measured, 256-byte values, 8-byte keys over $keys keys
- load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)
- command: scripts/bench-etcd.sh $out  (BENCH_SECONDS=$seconds BENCH_WARMUP=$warmup)
- results: $out; whole script: $(($(date +%s) - script_start)) s

EOF
"$work/driver" table "$out"
