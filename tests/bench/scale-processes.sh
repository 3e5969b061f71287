#!/usr/bin/env bash
# 1, 2, 3 `switchboard serve` processes on one PostgreSQL database, inbound flat out.
set -u
T=${T:-target/release}
export SWITCHBOARD_ENCRYPTION_KEY=$(head -c32 /dev/urandom | base64) SWITCHBOARD_LOG=warn
PUB=http://127.0.0.1:18101
for rep in 1 2 3; do
for n in 1 2 3; do
  psql -q -h 127.0.0.1 -U postgres -c 'DROP DATABASE IF EXISTS sb_scale WITH (FORCE)' -c 'CREATE DATABASE sb_scale' postgres
  export SWITCHBOARD_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/sb_scale
  $T/switchboard migrate >/dev/null 2>&1
  pids=(); servers=()
  for i in $(seq 1 $n); do
    port=$((18100 + i))
    SWITCHBOARD_LISTEN=127.0.0.1:$port SWITCHBOARD_PUBLIC_URL=$PUB setsid $T/switchboard serve >/tmp/scale-$i.log 2>&1 &
    pids+=($!); servers+=("http://127.0.0.1:$port")
  done
  sleep 1.5
  cpu0=0; for p in "${pids[@]}"; do cpu0=$((cpu0 + $(awk '{print $14+$15}' /proc/$p/stat))); done
  list=$(IFS=,; echo "${servers[*]}")
  out=$($T/switchboard-bench inbound --server "$list" --public-url $PUB --requests 30000 --connections 32 --meta-share 0 --duplicate-ratio 0 --no-ceiling 2>&1)
  cpu1=0; for p in "${pids[@]}"; do cpu1=$((cpu1 + $(awk '{print $14+$15}' /proc/$p/stat))); done
  line=$(echo "$out" | grep "server:" | head -1)
  db=$(echo "$out" | grep "db check" | head -1)
  echo "rep $rep n=$n | $line | server cpu ticks $((cpu1-cpu0)) | $db"
  for p in "${pids[@]}"; do kill $p; done; wait 2>/dev/null
  sleep 0.5
done
done
