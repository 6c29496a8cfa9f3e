#!/usr/bin/env bash
# The aifc program as a user runs it: exit codes, one-line errors, a saved result, Ctrl-C.
set -euo pipefail
aifc=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$aifc" --version | grep -q '^aifc ' || fail "--version"
"$aifc" bench --num-prompts 3 --help >"$tmp/help" || fail "bench --help: exit $?"
# As vllm bench serve: no server named is 127.0.0.1:8000, never the simulator by surprise.
set +e
"$aifc" bench --num-prompts 3 --port 1 >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "unreachable default server: exit $rc"
grep -q "cannot reach http://127.0.0.1:1" "$tmp/err" || fail "default server: $(cat "$tmp/err")"
grep -q -- "--request-rate" "$tmp/help" || fail "bench --help lists no --request-rate"
"$aifc" sim -h >"$tmp/help" || fail "sim -h: exit $?"
grep -q "usage: aifc sim" "$tmp/help" || fail "sim -h prints no usage"

set +e
"$aifc" bench --request-rat 5 >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown flag: exit $rc"
grep -q "unknown flag '--request-rat'" "$tmp/err" || fail "unknown flag message: $(cat "$tmp/err")"

set +e
"$aifc" bench --base-url http://127.0.0.1:1 --num-prompts 3 >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "unreachable server: exit $rc"
grep -q "cannot reach http://127.0.0.1:1" "$tmp/err" || fail "unreachable message: $(cat "$tmp/err")"

"$aifc" bench --num-prompts 40 --request-rate 100 --random-input-len 32 --random-output-len 8 \
  --sim-ttft-ms 5 --sim-itl-ms 1 --save-detailed --result-dir "$tmp/res" --result-filename r.json \
  --metadata run=ci --goodput ttft:1000 >"$tmp/out" 2>"$tmp/err" || fail "bench run: $(cat "$tmp/err")"
grep -q "Serving Benchmark Result" "$tmp/out" || fail "no summary table"
python3 - "$tmp/res/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ["completed", "failed", "request_throughput", "output_throughput", "total_token_throughput",
          "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms",
          "request_goodput", "max_concurrent_requests", "ttfts", "itls", "input_lens", "output_lens",
          "errors", "records", "date", "model_id", "run", "latencies", "queue_times", "rtfx"]:
    assert k in r, k
assert len(r["latencies"]) == 40 and all(0 < x < 60 for x in r["latencies"])
assert len(r["queue_times"]) == 40 and all(x >= 0 for x in r["queue_times"])
assert r["completed"] == 40, r["completed"]
assert r["run"] == "ci"
assert len(r["ttfts"]) == 40
assert r["total_input_tokens"] == 40 * 32, r["total_input_tokens"]  # exact through /tokenize
assert r["input_tokens_exact"] is True
PY

# https end to end: the simulator with vLLM's --ssl-certfile/--ssl-keyfile, the client trusting
# the certificate through --ca-cert (exact prompt lengths: /tokenize goes over TLS too), and
# refusing it without.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  >/dev/null 2>&1 || fail "openssl req"
"$aifc" bench --num-prompts 30 --max-concurrency 8 --random-input-len 16 --random-output-len 4 \
  --sim-ttft-ms 1 --sim-itl-ms 1 --sim-ssl-certfile "$tmp/cert.pem" --sim-ssl-keyfile "$tmp/key.pem" \
  --ca-cert "$tmp/cert.pem" --save-result --result-dir "$tmp/tls" --result-filename r.json \
  >"$tmp/out" 2>"$tmp/err" || fail "https run: $(cat "$tmp/err")"
grep -q "simulator at https://" "$tmp/err" || fail "the simulator did not serve https: $(cat "$tmp/err")"
python3 - "$tmp/tls/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["completed"] == 30 and r["failed"] == 0, (r["completed"], r["failed"])
assert r["total_output_tokens"] == 30 * 4, r["total_output_tokens"]
assert r["total_input_tokens"] == 30 * 16, r["total_input_tokens"]
PY
"$aifc" bench --num-prompts 3 --random-input-len 8 --random-output-len 2 --sim-ttft-ms 1 \
  --sim-itl-ms 1 --sim-ssl-certfile "$tmp/cert.pem" --sim-ssl-keyfile "$tmp/key.pem" \
  >"$tmp/out" 2>"$tmp/err" || true
grep -q "Errors (tls):  *3" "$tmp/out" || fail "an untrusted certificate: $(cat "$tmp/out" "$tmp/err")"

# --append-result adds one line per run to the file; the saved result is one line too, as vLLM
# writes it, under vLLM's name pattern when none is given.
for args in "--append-result --result-filename app.json" "--append-result --result-filename app.json" \
    "--save-result"; do
  # shellcheck disable=SC2086
  "$aifc" bench --num-prompts 3 --random-input-len 8 --random-output-len 2 --sim-ttft-ms 1 \
    --sim-itl-ms 1 --label app --request-rate 5 --result-dir "$tmp/app" $args \
    --disable-tqdm >/dev/null 2>"$tmp/err" || fail "bench $args: $(cat "$tmp/err")"
done
python3 - "$tmp/app" <<'PY'
import json, os, sys
lines = open(os.path.join(sys.argv[1], "app.json")).read().splitlines()
assert len(lines) == 2 and all(json.loads(l)["completed"] == 3 for l in lines), lines
named = [n for n in os.listdir(sys.argv[1]) if n != "app.json"]
assert len(named) == 1 and named[0].startswith("app-5.0qps-aifc-sim-"), named
assert len(open(os.path.join(sys.argv[1], named[0])).read().splitlines()) == 1
PY

# Habits of real servers, through the built-in simulator: a /tokenize of llama.cpp's shape with a
# tokenizer that splits words, or none at all; connections closed after every response.
for run in llama_cpp:event_loop llama_cpp:threads vllm:event_loop none:threads; do
  tokenizer=${run%:*} transport=${run#*:}
  "$aifc" bench --num-prompts 20 --random-input-len 40 --random-output-len 4 --max-concurrency 4 \
    --sim-tokenizer "$tokenizer" --sim-chars-per-token 3 --sim-close-after-response 10 \
    --sim-ttft-ms 1 --sim-itl-ms 1 --transport "$transport" --save-detailed --result-dir "$tmp/tok" \
    --result-filename "$tokenizer.json" --disable-tqdm >"$tmp/out" 2>"$tmp/err" \
    || fail "bench with --sim-tokenizer $tokenizer --transport $transport: $(cat "$tmp/err")"
  if [ "$tokenizer" = none ]; then
    grep -q "no /tokenize that counts" "$tmp/err" || fail "no warning without a tokenizer: $(cat "$tmp/err")"
  fi
  python3 - "$tmp/tok/$tokenizer.json" "$tokenizer" <<'PY'
import json, sys
r, tokenizer = json.load(open(sys.argv[1])), sys.argv[2]
assert r["completed"] == 20 and r["failed"] == 0, (r["completed"], r["errors_by_kind"])
assert r["input_tokens_exact"] is True  # the server's usage confirms every count
if tokenizer == "none":
    # Lengths are estimates (a word per token); the server's usage tells the truth.
    assert all(n >= 40 for n in r["input_lens"]), r["input_lens"]
else:
    assert r["input_lens"] == [40] * 20, r["input_lens"]
PY
done

# A result directory that cannot be written is found before the run.
set +e
"$aifc" bench --num-prompts 3 --sim-ttft-ms 1 --sim-itl-ms 1 --save-result \
  --result-dir /proc/aifc-cannot-be-here >"$tmp/out" 2>"$tmp/err"; rc=$?
set -e
[ "$rc" = 2 ] || fail "unwritable --result-dir: exit $rc"
grep -q "is not a writable directory" "$tmp/err" || fail "result-dir message: $(cat "$tmp/err")"
grep -q "Serving Benchmark Result" "$tmp/out" && fail "ran before finding the result dir unwritable"

# Ctrl-C while the set-up counts 200000 prompts with the server's tokenizer ends it at once.
python3 -c 'import json
with open("'"$tmp"'/many.jsonl", "w") as f:
    for i in range(200000): f.write(json.dumps({"prompt": f"prompt number {i} here", "output_tokens": 2}) + "\n")'
"$aifc" bench --dataset-name jsonl --dataset-path "$tmp/many.jsonl" --num-prompts 200000 \
  --sim-ttft-ms 1 --sim-itl-ms 1 >"$tmp/out3" 2>"$tmp/err3" &
setup_pid=$!
sleep 1  # counting takes tens of seconds (a round trip per prompt)
kill -INT "$setup_pid"
set +e
wait "$setup_pid"; rc=$?
set -e
[ "$rc" = 130 ] || fail "Ctrl-C during the set-up: exit $rc, $(cat "$tmp/err3")"
grep -q "interrupted during the set-up" "$tmp/err3" || fail "set-up interrupt: $(cat "$tmp/err3")"

# A separate simulator process, and Ctrl-C in the middle of a long run keeps the partial result.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$aifc" sim --port "$port" --ttft-ms 5 --itl-ms 20 >"$tmp/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/sim.out" && break; sleep 0.1; done
"$aifc" bench --base-url "http://127.0.0.1:$port" --num-prompts 100 --duration 60 --request-rate 50 \
  --random-output-len 20 --result-dir "$tmp/partial" >"$tmp/out2" 2>"$tmp/err2" &
bench_pid=$!
sleep 2
kill -INT "$bench_pid"
set +e
wait "$bench_pid"; rc=$?
set -e
kill -INT "$sim_pid"; wait "$sim_pid" || true
[ "$rc" = 130 ] || fail "interrupted run: exit $rc, $(cat "$tmp/err2")"
grep -q "partial result written" "$tmp/err2" || fail "no partial result: $(cat "$tmp/err2")"
python3 - "$tmp"/partial/*.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["interrupted"] is True
assert r["completed"] > 20, r["completed"]
assert r["failed"] == 0, r["errors_by_kind"]
PY
# Shards of one schedule (`--rank i --nranks 3`, as `srun aifc bench` runs them) merge into one
# result with the whole schedule's counts; a missing shard is named and fails the merge.
for rank in 0 1 2; do
  "$aifc" bench --sim --num-prompts 30 --random-input-len 12 --random-output-len 4 \
    --request-rate 200 --rank "$rank" --nranks 3 --save-result --save-detailed \
    --result-dir "$tmp/shards" --result-filename "shard$rank.json" >/dev/null 2>&1 ||
    fail "shard $rank failed"
done
"$aifc" merge "$tmp"/shards/shard{0,1,2}.json --output "$tmp/merged.json" >"$tmp/merge.out" 2>&1 ||
  fail "aifc merge: $(cat "$tmp/merge.out")"
grep -q "Merged 3 of 3 ranks (exact" "$tmp/merge.out" || fail "merge summary: $(cat "$tmp/merge.out")"
python3 - "$tmp/merged.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["completed"] == 30 and r["failed"] == 0, (r["completed"], r["errors_by_kind"])
assert r["total_output_tokens"] == 120, r["total_output_tokens"]
assert r["distributed"]["ranks"] == [0, 1, 2] and r["distributed"]["exact"] is True
PY
set +e
"$aifc" merge "$tmp"/shards/shard{0,2}.json --output "$tmp/merged2.json" >"$tmp/merge2.out" 2>&1
rc=$?
"$aifc" merge "$tmp/out" >"$tmp/merge3.out" 2>&1
rc3=$?
set -e
[ "$rc" = 1 ] && grep -q "missing: \[1\]" "$tmp/merge2.out" || fail "missing shard: rc $rc, $(cat "$tmp/merge2.out")"
[ "$rc3" = 1 ] && grep -q "error: " "$tmp/merge3.out" || fail "merge of a non-result: rc $rc3"

echo "cli program: all checks passed"
