#!/usr/bin/env bash
# A/B of two release builds, alternated, each with its own switchboard-bench, a fresh SQLite
# file per run. Prints nothing; each run's output (and the server's CPU ticks, 10 ms each)
# lands in OUTDIR/<kind>-<old|new>-<n>.txt.
#   OLD=/path/to/old/release NEW=/path/to/new/release tests/bench/ab.sh inbound|outbound PAIRS OUTDIR
set -u
kind=$1; pairs=$2; out=$3; mkdir -p "$out"
export SWITCHBOARD_ENCRYPTION_KEY=$(head -c32 /dev/urandom | base64) SWITCHBOARD_LOG=warn
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for i in $(seq 1 "$pairs"); do
  for b in old new; do
    if [ "$b" = old ]; then T=$OLD; else T=$NEW; fi
    d=/tmp/sb-ab-$b; rm -rf "$d"; mkdir -p "$d"
    export SWITCHBOARD_DATABASE_URL="sqlite://$d/sb.db?mode=rwc"
    export SWITCHBOARD_LISTEN=127.0.0.1:18380 SWITCHBOARD_MEDIA_DIR=$d/media
    export SWITCHBOARD_TWILIO_API_BASE=http://127.0.0.1:18399 SWITCHBOARD_META_GRAPH_BASE=http://127.0.0.1:18399
    "$T/switchboard" serve >"$d/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18380/health >/dev/null && break; sleep 0.1; done
    t0=$(cpu $pid)
    if [ "$kind" = inbound ]; then
      "$T/switchboard-bench" inbound --server http://127.0.0.1:18380 --requests 20000 --connections 64 --no-ceiling
    else
      "$T/switchboard-bench" outbound --server http://127.0.0.1:18380 --fake-listen 127.0.0.1:18399 --messages 10000 --backlog
    fi >"$out/$kind-$b-$i.txt" 2>&1
    echo "server_cpu_ticks=$(( $(cpu $pid) - t0 ))" >>"$out/$kind-$b-$i.txt"
    kill $pid; wait $pid 2>/dev/null
  done
done
