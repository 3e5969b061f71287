#!/usr/bin/env bash
# Release builds of switchboard, alternated, under peer-bench's own load: `wrk -c32` replaying
# its signed Twilio requests (run ../shared/peer-bench/run.sh once first: it generates
# /tmp/peer-data/requests.txt and installs wrk). Each run: a fresh SQLite file, `switchboard
# migrate`, a tenant, the dataset's Twilio account, a 3-s warm-up, then 10 s measured; it
# prints webhooks/s, p99, the server's CPU per webhook (utime+stime from /proc) and the bytes
# it wrote per webhook (wchar from /proc: WAL frames and checkpoints), then its read and write
# system calls and bytes read per webhook (syscr, syscw, rchar: exact counters, which
# include the HTTP requests and answers), the CPU of the SQLite writer thread per webhook
# (SQLite: the path's serial part) and PostgreSQL's CPU per webhook (every postgres process).
#   tests/bench/peer-wrk-ab.sh REPS /path/to/a/switchboard /path/to/b/switchboard ...
# `fastpath` in place of a binary runs peer-bench's storage ceiling (SQLite FULL) the same way;
# give it LOAD=400000 (requests loaded per run) so that it does not wrap the dataset.
# PREP_SQL runs on Switchboard's database after `migrate` (schema experiments; through psql
# with PG=1). `fastpath` and PREP_SQL on SQLite need the sqlite3 shell (Debian's sqlite3).
# PG=1 runs Switchboard on a fresh PostgreSQL database (`sbab` on 127.0.0.1:5432, user postgres) per
# run instead of a SQLite file; the bytes and system calls then are the server's alone, not
# PostgreSQL's (whose CPU is printed), and PERF=1 records the whole box (perf record -a).
# PERF=1 records a profile of each run (perf record -F 999, call graphs PERF_CG, default -g,
# for PERF_SECS, default 8) to /tmp/peer-wrk-ab/perf-<n>.data.
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
# PostgreSQL's own CPU ticks (every postgres process: backends, WAL writer, checkpointer).
pg_cpu() { for p in $(pgrep -x postgres); do cat /proc/$p/stat; done 2>/dev/null | awk '{s+=$14+$15} END {print s+0}'; }
start=0; n=0
for _ in $(seq 1 "$reps"); do
  for bin in "$@"; do
    n=$((n + 1)); d=$out/data; rm -rf $d; mkdir -p $d; cd $d
    export SWITCHBOARD_DATABASE_URL="sqlite://$d/sb.db?mode=rwc"
    if [ -n "${PG:-}" ]; then
      psql -q -U postgres -h 127.0.0.1 -c 'DROP DATABASE IF EXISTS sbab' -c 'CREATE DATABASE sbab' >/dev/null
      export SWITCHBOARD_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/sbab
    fi
    if [ "$bin" = fastpath ]; then
      # peer-bench's storage ceiling, as its run.sh builds it, on peer-bench's schema.
      sqlite3 $d/fp.db < /tmp/peer-bench/schema/sqlite.sql >/dev/null
      STORE=sqlite SYNC=FULL SQLITE_PATH=$d/fp.db PORT=8090 TWILIO_AUTH_TOKEN=${TWILIO_AUTH_TOKEN:-12ab34cd56ef78ab90cd12ef34ab56cd} /tmp/peer-target/release/peer-fastpath >$d/server.log 2>&1 & pid=$!
      sleep 1
    else
      "$bin" migrate >/dev/null
      if [ -n "${PREP_SQL:-}" ]; then
        if [ -n "${PG:-}" ]; then psql -q -U postgres -h 127.0.0.1 -d sbab -c "$PREP_SQL" >/dev/null
        else sqlite3 $d/sb.db "$PREP_SQL"; fi
      fi
      key=$("$bin" tenant create ab)
      "$bin" serve >$d/server.log 2>&1 & pid=$!
      for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8090/health >/dev/null && break; sleep 0.1; done
      curl -fs -o /dev/null -X POST http://127.0.0.1:8090/v1/accounts -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' \
        -d "{\"channel\":\"twilio-whatsapp\",\"address\":\"$to\",\"credentials\":{\"account_sid\":\"$sid\",\"auth_token\":\"${TWILIO_AUTH_TOKEN:-12ab34cd56ef78ab90cd12ef34ab56cd}\"}}"
    fi
    wrk -t1 -c32 -d3s -s "$lua" http://127.0.0.1:8090/webhooks/twilio-whatsapp -- "$reqs" $start 20000 1 >/dev/null
    t0=$(awk '{print $14+$15}' /proc/$pid/stat); w0=$(awk '/^wchar/{print $2}' /proc/$pid/io); cp /proc/$pid/io $out/io0
    # The SQLite writer thread's own CPU, the serial part of the inbound path: Switchboard's
    # `inbound-writer`, fastpath's `sqlite-writer` (absent on PostgreSQL).
    wt=$(grep -lxE 'inbound-writer|sqlite-writer' /proc/$pid/task/*/comm 2>/dev/null | head -1 | xargs -r dirname)
    wt0=$([ -n "$wt" ] && awk '{print $14+$15}' $wt/stat || echo 0)
    pg0=$(pg_cpu)
    [ -n "${PERF:-}" ] && { perf record -F 999 ${PERF_CG:--g} -o $out/perf-$n.data $([ -n "${PG:-}" ] && echo -a || echo -p $pid) -- sleep ${PERF_SECS:-8} >/dev/null 2>&1 & }
    wrk -t1 -c32 -d10s --latency -s "$lua" http://127.0.0.1:8090/webhooks/twilio-whatsapp -- "$reqs" $((start + 20000)) ${LOAD:-100000} 1 >$out/wrk-$n.txt
    t1=$(awk '{print $14+$15}' /proc/$pid/stat); w1=$(awk '/^wchar/{print $2}' /proc/$pid/io); cp /proc/$pid/io $out/io1
    wt1=$([ -n "$wt" ] && awk '{print $14+$15}' $wt/stat || echo 0); pg1=$(pg_cpu); sleep 1
    rate=$(awk '/Requests\/sec/{print $2}' $out/wrk-$n.txt); p99=$(awk '$1=="99%"{print $2}' $out/wrk-$n.txt)
    echo "$bin: $rate/s p99 $p99 $(python3 -c "print(round(($t1-$t0)*10000/($rate*10)))") µs/webhook $(python3 -c "print(round(($w1-$w0)/($rate*10)))") bytes written/webhook"
    python3 - "$out/io0" "$out/io1" "$rate" "${wt:+$((wt1 - wt0))}" "${PG:+$((pg1 - pg0))}" <<'PY'
import sys
io = [dict(line.split(": ") for line in open(f).read().splitlines()) for f in sys.argv[1:3]]
webhooks = float(sys.argv[3]) * 10
per = lambda k: (int(io[1][k]) - int(io[0][k])) / webhooks
line = f"   per webhook: {per('syscr'):.1f} reads, {per('syscw'):.1f} writes (system calls), {per('rchar'):.0f} bytes read"
# CPU ticks are 10 ms: ticks * 10,000 µs / webhooks. Printed only where measured.
for name, ticks in (("writer thread", sys.argv[4]), ("PostgreSQL", sys.argv[5])):
    if ticks:
        line += f", {name} {float(ticks) * 10000 / webhooks:.0f} µs"
print(line)
PY
    # PostgreSQL: how many of the conversations' updates were HOT (no new index entries).
    [ -n "${PG:-}" ] && psql -qtA -U postgres -h 127.0.0.1 -d sbab -c "SELECT '   conversations: ' || n_tup_upd || ' updates, ' || n_tup_hot_upd || ' HOT' FROM pg_stat_user_tables WHERE relname = 'conversations'"
    kill $pid; wait $pid 2>/dev/null
    start=$(( (start + 130000) % 450000 ))
  done
done
