#!/bin/sh
# Runs every fuzz target one after the other for $1 seconds each (default 600), niced, reading
# the committed seeds and growing corpus-grown/<target>; logs in logs/<target>.log.
# Usage: ./run-all.sh [seconds] [target...]
set -eu
cd "$(dirname "$0")"
seconds="${1:-600}"
[ "$#" -gt 0 ] && shift
targets="${*:-$(cargo +nightly fuzz list)}"
mkdir -p logs
for target in $targets; do
    mkdir -p "corpus-grown/$target" "corpus/$target"
    echo "$(date -u +%FT%TZ) $target start" >> logs/runs.txt
    status=0
    nice -n 10 cargo +nightly fuzz run "$target" "corpus-grown/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        > "logs/$target.log" 2>&1 || status=$?
    echo "$(date -u +%FT%TZ) $target exit $status" >> logs/runs.txt
done
