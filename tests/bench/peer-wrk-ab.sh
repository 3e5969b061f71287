#!/usr/bin/env bash
# Release builds of switchboard, alternated, under peer-bench's own load: `wrk -c32` replaying
# its signed Twilio requests (run ../shared/peer-bench/run.sh once first: it generates
# /tmp/peer-data/requests.txt and installs wrk). Each run: a fresh SQLite file, `switchboard
# migrate`, a tenant, the dataset's Twilio account, a 3-s warm-up, then 10 s measured; it
# prints webhooks/s, p99 and the server's CPU per webhook (utime+stime from /proc).
#   tests/bench/peer-wrk-ab.sh REPS /path/to/a/switchboard /path/to/b/switchboard ...
# PERF=1 records a profile of each run (perf record -F 999 -g) to /tmp/peer-wrk-ab/perf-<n>.data.
set -u
reps=$1; shift
reqs=/tmp/peer-data/requests.txt
[ -f "$reqs" ] || { echo "no $reqs: run ../shared/peer-bench/run.sh once" >&2; exit 1; }
lua=$(cd "$(dirname "$0")/../../.." && pwd)/shared/peer-bench/load/twilio.lua
[ -f "$lua" ] || lua=/tmp/peer-bench/load/twilio.lua
out=/tmp/peer-wrk-ab; mkdir -p $out
line=$(head -1 "$reqs" | cut -f2)
field() { python3 -c "import urllib.parse,sys;print(urllib.parse.parse_qs(sys.argv[1])[sys.argv[2]][0].removeprefix('whatsapp:'))" "$line" "$1"; }
sid=$(field AccountSid); to=$(field To)
export SWITCHBOARD_LISTEN=127.0.0.1:8090 SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:8090 SWITCHBOARD_LOG=warn
export SWITCHBOARD_ENCRYPTION_KEY=$(head -c32 /dev/urandom | base64)
start=0; n=0
for _ in $(seq 1 "$reps"); do
  for bin in "$@"; do
    n=$((n + 1)); d=$out/data; rm -rf $d; mkdir -p $d; cd $d
    export SWITCHBOARD_DATABASE_URL="sqlite://$d/sb.db?mode=rwc"
    "$bin" migrate >/dev/null; key=$("$bin" tenant create ab)
    "$bin" serve >$d/server.log 2>&1 & pid=$!
    for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8090/health >/dev/null && break; sleep 0.1; done
    curl -fs -o /dev/null -X POST http://127.0.0.1:8090/v1/accounts -H "Authorization: Bearer $key" \
      -H 'Content-Type: application/json' \
      -d "{\"channel\":\"twilio-whatsapp\",\"address\":\"$to\",\"credentials\":{\"account_sid\":\"$sid\",\"auth_token\":\"${TWILIO_AUTH_TOKEN:-12ab34cd56ef78ab90cd12ef34ab56cd}\"}}"
    wrk -t1 -c32 -d3s -s "$lua" http://127.0.0.1:8090/webhooks/twilio-whatsapp -- "$reqs" $start 20000 1 >/dev/null
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    [ -n "${PERF:-}" ] && { perf record -F 999 -g -o $out/perf-$n.data -p $pid -- sleep 8 >/dev/null 2>&1 & }
    wrk -t1 -c32 -d10s --latency -s "$lua" http://127.0.0.1:8090/webhooks/twilio-whatsapp -- "$reqs" $((start + 20000)) 100000 1 >$out/wrk-$n.txt
    t1=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 1
    rate=$(awk '/Requests\/sec/{print $2}' $out/wrk-$n.txt); p99=$(awk '$1=="99%"{print $2}' $out/wrk-$n.txt)
    echo "$bin: $rate/s p99 $p99 $(python3 -c "print(round(($t1-$t0)*10000/($rate*10)))") µs/webhook"
    kill $pid; wait $pid 2>/dev/null
    start=$(( (start + 130000) % 450000 ))
  done
done
