#!/usr/bin/env bash
# Every load-test measurement of load-tests/RESULTS.md, in one command (about 10 minutes
# on the 2-core machine; release build first):
#   1. throughput.sh: RPS, p50/p99 at 64 connections, mock vs passthrough vs Tollgate,
#      json and stream, the ratios, RSS, usage events metered/dropped/stored;
#   2. streams.sh: time to first streamed byte, paced latency at 64 connections (added
#      p50/p99 over the mock), RSS with 1,000 concurrent slow streams and across a ~9 MB
#      stream;
#   3. profile.sh: instructions per request (callgrind), passthrough vs Tollgate;
#   4. syscalls.sh: system calls, context switches and CPU time per request.
# Usage: load-tests/run.sh [SECONDS_PER_RUN] [CONNECTIONS] [ROUNDS]   (defaults 10, 64, 3)
set -euo pipefail
cd "$(dirname "$0")"
echo "== throughput"
bash throughput.sh "${1:-10}" "${2:-64}" "${3:-3}"
echo "== streams and paced latency"
bash streams.sh 2000 1000
echo "== instructions per request"
bash profile.sh 10
echo "== system calls per request"
bash syscalls.sh 5
