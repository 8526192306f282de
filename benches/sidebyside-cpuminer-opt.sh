#!/usr/bin/env bash
# Our miner beside cpuminer-opt on this machine, as docs/benchmarks.md records it: one
# thread and two, without version rolling (cpuminer-opt's sha256d benchmark does not roll),
# three rounds alternating the programs; ours with version rolling too.
#
#   CPUMINER=/path/to/cpuminer OLD=/path/to/miner-before NEW=target/release/miner \
#     benches/sidebyside-cpuminer-opt.sh
#
# cpuminer-opt: its repository's build.sh flags (-O3 -march=native). OLD is optional.
set -euo pipefail
cpuminer=${CPUMINER:?set CPUMINER to cpuminer-opt\'s binary}
new=${NEW:-target/release/miner}
old=${OLD:-}
seconds=${SECONDS_PER_RUN:-10}

ours() { # binary threads [flags]
  "$1" bench --seconds "$seconds" --interval "$seconds" -t "$2" --backend avx512 ${3:-} --json |
    python3 -c "import json,sys; print(round(json.load(sys.stdin)['mhs'],2))"
}
theirs() { # threads
  "$cpuminer" -a sha256d --benchmark -t "$1" --time-limit $((seconds + 2)) 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' | grep -o "Benchmark: [0-9.]* MH/s" | tail -1 | awk '{print $2}'
}
for t in 1 2; do
  for round in 1 2 3; do
    line="threads=$t round=$round cpuminer-opt=$(theirs "$t")"
    if [ -n "$old" ]; then line="$line before=$(ours "$old" "$t" --no-version-rolling)"; fi
    line="$line after=$(ours "$new" "$t" --no-version-rolling) after-rolling=$(ours "$new" "$t")"
    echo "$line"
  done
done
