#!/usr/bin/env bash
# Load test and soak of `cairn serve`, all on 127.0.0.1.
#
#   bench/serve/run.sh            # load: POST /v1/checks at 1, 16 and 64 connections,
#                                 #       plus the GET /healthz floor (20 s each)
#   QUICK=1 bench/serve/run.sh    # the same, 3 s each
#   bench/serve/run.sh tune       # POST /v1/checks at 16 connections for each
#                                 #       max-concurrent in TUNE_VALUES
#   SOAK_SECONDS=600 bench/serve/run.sh soak
#                                 # steady load at 16 connections; the server's
#                                 #       RSS and open fds every 10 s into a CSV
#
# Environment:
#   CAIRN_BIN        the binary (default target/release/cairn; this script builds nothing)
#   DURATION         seconds per wrk run (default 20, QUICK=1: 3)
#   CONNECTIONS      connection counts of the load mode (default "1 16 64")
#   THREADS          wrk threads (default 2)
#   MAX_CONCURRENT   [server] max-concurrent (default 4; see BENCHMARKS.md Part 8)
#   MAX_QUEUE        [server] max-queue (default 256)
#   TUNE_VALUES      max-concurrent values of the tune mode (default "1 2 4 8")
#   SOAK_SECONDS     soak length (default 600); SOAK_CONNECTIONS (default 16)
#   SAMPLE_SECONDS   soak sampling period (default 10)
#   OUT              where results go (default a new directory under /tmp)
#
# Needs wrk and curl. The plan runs one small validator (the bundled
# no-deletes plugin) at one checkpoint, on a one-document change.
set -euo pipefail

MODE=${1:-load}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${CAIRN_BIN:-$ROOT/target/release/cairn}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then DURATION=${DURATION:-3}; else DURATION=${DURATION:-20}; fi
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
THREADS=${THREADS:-2}
MAX_CONCURRENT=${MAX_CONCURRENT:-4}
MAX_QUEUE=${MAX_QUEUE:-256}
TUNE_VALUES=${TUNE_VALUES:-"1 2 4 8"}
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-16}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-10}
START_TIMEOUT=${START_TIMEOUT:-300} # first start may compile the plugin

case $MODE in
  load | tune | soak) ;;
  *) echo "usage: $0 [load|tune|soak]" >&2; exit 64 ;;
esac
for tool in wrk curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool (Debian: apt-get install $tool)" >&2; exit 69; }
done
if [[ ! -x $BIN ]]; then
  echo "$0: no $BIN; build it first: cargo build --release -p cairn-host" >&2
  exit 69
fi

OUT=${OUT:-$(mktemp -d /tmp/cairn-serve-bench.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/cairn-serve-work.XXXXXX)
SERVER_PID=
WRK_PID=

cleanup() {
  local status=$?
  if [[ -n $WRK_PID ]] && kill -0 "$WRK_PID" 2>/dev/null; then kill "$WRK_PID" 2>/dev/null || true; fi
  stop_server
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The plugin: its built component if there is one, else its Cargo project
# (which cairn builds on first load).
PLUGIN=$ROOT/plugins/target/wasm32-wasip2/release/no_deletes.wasm
[[ -f $PLUGIN ]] || PLUGIN=$ROOT/plugins/no-deletes

TOKEN="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOKEN_SHA=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)

cat >"$WORK/plan.toml" <<EOF
[plugins.no-deletes]
path = "$PLUGIN"

[[checkpoint]]
name = "gate"
environment = "ci"
validators = [{ plugin = "no-deletes" }]
EOF

printf '%s' '{"documents":[{"path":"workflows/a.json","before":"{}","after":"{\"a\":1}"}],"metrics":{}}' >"$WORK/bundle.json"

write_config() { # max-concurrent
  cat >"$WORK/serve.toml" <<EOF
[server]
listen = "127.0.0.1:0"
max-concurrent = $1
max-queue = $MAX_QUEUE
request-timeout-ms = 10000
shutdown-grace-ms = 5000
state-dir = "$WORK/state"

[[tenant]]
name = "bench"
plans = { bench = "$WORK/plan.toml" }

[[tenant.token]]
identity = "bench"
sha256 = "$TOKEN_SHA"
EOF
}

cat >"$WORK/check.lua" <<EOF
wrk.method = "POST"
local f = assert(io.open("$WORK/bundle.json", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
EOF
cat >>"$WORK/check.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f status_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
EOF
# The same summary for GET /healthz (no body, no token).
sed -n '/^done = /,$p' "$WORK/check.lua" >"$WORK/healthz.lua"

start_server() { # max-concurrent
  write_config "$1"
  : >"$WORK/server.log"
  "$BIN" serve --config "$WORK/serve.toml" 2>"$WORK/server.log" &
  SERVER_PID=$!
  local waited=0
  ADDR=
  while [[ -z $ADDR ]]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "$0: the server stopped while starting:" >&2
      cat "$WORK/server.log" >&2
      SERVER_PID=
      exit 70
    fi
    if ((waited >= START_TIMEOUT * 10)); then
      echo "$0: no 'serving on' line within ${START_TIMEOUT}s" >&2
      exit 70
    fi
    ADDR=$(sed -n 's|.*serving on http://\([0-9.:]*\).*|\1|p' "$WORK/server.log" | head -n1)
    sleep 0.1
    waited=$((waited + 1))
  done
  BASE=http://$ADDR
  local tries=0
  until curl -fsS --max-time 2 "$BASE/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if ((tries > 50)); then echo "$0: $BASE/readyz never answered 200" >&2; exit 70; fi
    sleep 0.2
  done
  # One check by hand: it must pass, or the numbers mean nothing.
  local outcome
  outcome=$(curl -sS --max-time 10 -o /dev/null -D - -H "Authorization: Bearer $TOKEN" \
    --data-binary @"$WORK/bundle.json" "$BASE/v1/checks?plan=bench" |
    tr -d '\r' | sed -n 's/^[Cc]airn-[Oo]utcome: //p')
  if [[ $outcome != pass ]]; then
    echo "$0: the warm-up check did not pass (Cairn-Outcome: '${outcome}')" >&2
    exit 70
  fi
}

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

# CPU seconds (user + system) the server has used so far.
TICKS=$(getconf CLK_TCK)
server_cpu() {
  awk -v t="$TICKS" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$SERVER_PID/stat"
}

# wrk against the running server; prints one line:
#   label conns rps p50 p90 p99 max non2xx socket_errors requests server_cpu_us_per_req
run_wrk() { # label connections seconds script path
  local label=$1 conns=$2 secs=$3 script=$4 path=$5 cpu0 cpu1 line
  local threads=$((THREADS < conns ? THREADS : conns))
  cpu0=$(server_cpu)
  if ! timeout $((secs + 60)) wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s --latency \
    -s "$script" "$BASE$path" >"$OUT/wrk-$label-c$conns.txt" 2>"$OUT/wrk-$label-c$conns.result"; then
    echo "$0: wrk failed:" >&2
    cat "$OUT/wrk-$label-c$conns.txt" "$OUT/wrk-$label-c$conns.result" >&2
    exit 70
  fi
  cpu1=$(server_cpu)
  line=$(grep '^RESULT' "$OUT/wrk-$label-c$conns.result")
  awk -v label="$label" -v conns="$conns" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{print b-a}')" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END {
      sock = v["connect"] + v["read"] + v["write"] + v["timeout"]
      per = v["requests"] > 0 ? cpu * 1e6 / v["requests"] : 0
      printf "%-8s %5d %10.1f %9.2f %9.2f %9.2f %9.2f %8d %8d %10d %10.0f\n",
        label, conns, v["rps"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"],
        v["status_errors"], sock, v["requests"], per
    }' <<<"$line"
}

header() {
  printf '%-8s %5s %10s %9s %9s %9s %9s %8s %8s %10s %10s\n' \
    what conns req/s p50_ms p90_ms p99_ms max_ms non2xx sockerr requests cpu_us/req
}

machine_note() {
  echo "machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), load $(cut -d' ' -f1-3 /proc/loadavg); wrk and server share it"
  echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"
  echo "plugin: $PLUGIN"
}

# Rows of the soak CSV: the first is idle before the load, the last idle
# after it, the others under load. Prints first/last/max under load and
# whether RSS and fds are flat: RSS flat when the last third's mean is
# within 10 % of the first sample under load; fds flat when they are back
# to the idle count afterwards and never exceed the first sample under
# load by more than 16.
summarize_soak() { # csv
  awk -F, '
    BEGIN { n = 0 }
    NR == 1 { next }
    { t[n] = $1; rss[n] = $2; fds[n] = $3; thr[n] = $4; n++ }
    END {
      if (n < 4) { print "too few samples"; exit 1 }
      last = n - 2
      maxr = 0; maxf = 0
      for (i = 1; i <= last; i++) { if (rss[i] > maxr) maxr = rss[i]; if (fds[i] > maxf) maxf = fds[i] }
      from = 1 + int((last - 1) * 2 / 3); s = 0; k = 0
      for (i = from; i <= last; i++) { s += rss[i]; k++ }
      tail = s / k
      growth = (tail - rss[1]) / rss[1] * 100
      printf "RSS (KiB): idle before %d; under load first (t=%ds) %d, last (t=%ds) %d, max %d; idle after %d; last-third mean %+.1f%% vs first\n",
        rss[0], t[1], rss[1], t[last], rss[last], maxr, rss[n-1], growth
      printf "fds:       idle before %d; under load first %d, last %d, max %d; idle after %d\n",
        fds[0], fds[1], fds[last], maxf, fds[n-1]
      printf "threads:   idle before %d; under load first %d, last %d\n", thr[0], thr[1], thr[last]
      printf "verdict: RSS %s, fds %s\n",
        (growth < 10 ? "flat" : "GROWING"),
        (fds[n-1] <= fds[0] + 2 && maxf <= fds[1] + 16 ? "flat" : "GROWING")
    }' "$1"
}

case $MODE in
load)
  machine_note | tee "$OUT/summary.txt"
  start_server "$MAX_CONCURRENT"
  echo "server: $BASE pid $SERVER_PID, max-concurrent $MAX_CONCURRENT, max-queue $MAX_QUEUE; ${DURATION}s per run, $THREADS wrk threads" | tee -a "$OUT/summary.txt"
  header | tee -a "$OUT/summary.txt"
  for c in $CONNECTIONS; do
    run_wrk check "$c" "$DURATION" "$WORK/check.lua" "/v1/checks?plan=bench" | tee -a "$OUT/summary.txt"
  done
  for c in 16 64; do
    run_wrk healthz "$c" "$DURATION" "$WORK/healthz.lua" /healthz | tee -a "$OUT/summary.txt"
  done
  curl -sS --max-time 5 "$BASE/metrics" >"$OUT/metrics.txt" || true
  echo "(non2xx: responses with status >= 400 as wrk counts them; sockerr: connect+read+write+timeout errors;"
  echo " cpu_us/req: server user+system CPU per request; raw wrk output and /metrics in $OUT)"
  ;;
tune)
  machine_note | tee "$OUT/tune.txt"
  echo "POST /v1/checks at 16 connections, ${DURATION}s each, by max-concurrent" | tee -a "$OUT/tune.txt"
  printf 'max-conc ' | tee -a "$OUT/tune.txt"
  header | tee -a "$OUT/tune.txt"
  for mc in $TUNE_VALUES; do
    start_server "$mc"
    printf '%-8s ' "$mc" | tee -a "$OUT/tune.txt"
    run_wrk "check-mc$mc" 16 "$DURATION" "$WORK/check.lua" "/v1/checks?plan=bench" | tee -a "$OUT/tune.txt"
    stop_server
  done
  ;;
soak)
  machine_note | tee "$OUT/soak.txt"
  start_server "$MAX_CONCURRENT"
  csv=$OUT/soak.csv
  echo "elapsed_s,rss_kb,fds,threads" >"$csv"
  sample() { # elapsed
    local rss fds thr
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status")
    thr=$(awk '/^Threads:/ { print $2 }' "/proc/$SERVER_PID/status")
    fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
    echo "$1,$rss,$fds,$thr" >>"$csv"
  }
  echo "server: $BASE pid $SERVER_PID, max-concurrent $MAX_CONCURRENT; soak ${SOAK_SECONDS}s at $SOAK_CONNECTIONS connections, a sample every ${SAMPLE_SECONDS}s into $csv" | tee -a "$OUT/soak.txt"
  sample 0
  timeout $((SOAK_SECONDS + 60)) wrk -t "$THREADS" -c "$SOAK_CONNECTIONS" -d "${SOAK_SECONDS}s" --timeout 10s --latency \
    -s "$WORK/check.lua" "$BASE/v1/checks?plan=bench" >"$OUT/wrk-soak.txt" 2>"$OUT/wrk-soak.result" &
  WRK_PID=$!
  start=$SECONDS
  deadline=$((SOAK_SECONDS + 60))
  while ((SECONDS - start < deadline)); do
    sleep "$SAMPLE_SECONDS"
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "$0: the server died during the soak" >&2; exit 70; }
    kill -0 "$WRK_PID" 2>/dev/null || break # only samples taken under load
    sample $((SECONDS - start))
  done
  wait "$WRK_PID" || true
  WRK_PID=
  sleep 2
  sample $((SECONDS - start)) # idle, after the load
  sed -n 's/^RESULT //p' "$OUT/wrk-soak.result" | tee -a "$OUT/soak.txt"
  summarize_soak "$csv" | tee -a "$OUT/soak.txt"
  ;;
esac
echo "results in $OUT"
