#!/usr/bin/env bash
# The dashboard's page times on a big store (issue 13): seeds a store with EVENTS usage
# events over 90 days (examples/seed_usage.rs, through the usage writer's own insert, so
# the rollups are as a running gateway keeps them) for 50 users and 200 keys, starts
# Tollgate on it, signs in as an admin, and fetches every dashboard page ROUNDS times
# (sequentially, one client, the server's own time plus loopback): prints p50/p95/max ms
# and the size of each page, against the targets (p95 under 150 ms, under 100 KB).
#   bash load-tests/dashboard.sh [EVENTS] [ROUNDS]      defaults: 1000000 20
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
rounds=${2:-20}
source load-tests/common.sh
need curl python3
cargo build --release -q --example seed_usage

cat >"$tmp/tollgate.yaml" <<YAML
server: { listen: ["127.0.0.1:18480"], threads: 1 }
admin: { listen: "127.0.0.1:18490" }
storage: { path: "$tmp/tollgate.db" }
upstreams:
  - { name: openai, kind: openai, base_url: "http://127.0.0.1:9", keys: ["sk-load"] }
  - { name: anthropic, kind: anthropic, base_url: "http://127.0.0.1:9", keys: ["sk-load"] }
  - { name: gemini, kind: gemini, base_url: "http://127.0.0.1:9", keys: ["sk-load"] }
routes:
  - { models: ["*"], upstreams: [openai] }
pricing:
  "gpt-*": { input: 0.15, output: 0.60 }
  "claude-*": { input: 3, output: 15 }
YAML
tg() { "$bin/tollgate" -c "$tmp/tollgate.yaml" "$@"; }
echo "seeding: 50 users, 200 keys, $events events" >&2
printf 'bench-password-1' | tg user add root --role admin --password-stdin >/dev/null
for u in $(seq 1 50); do
  tg user add "user$u" --budget-usd 100 >/dev/null
  for k in 1 2 3 4; do tg key create --user "user$u" --name "key$k" --budget-usd 25 >/dev/null; done
done
start=$(date +%s)
target/release/examples/seed_usage "$tmp/tollgate.db" "$events" 90
echo "seeded in $(( $(date +%s) - start )) s; store $(du -h "$tmp/tollgate.db" | cut -f1)" >&2

"$bin/tollgate" -c "$tmp/tollgate.yaml" serve >"$tmp/gateway.log" 2>&1 &
pids+=($!)
wait_for 18490
admin=http://127.0.0.1:18490
cookie=$(curl -sS -o /dev/null -D - "$admin/ui/login" --data 'username=root&password=bench-password-1' \
  | tr -d '\r' | sed -n 's/^set-cookie: \(tollgate_session=[^;]*\).*/\1/Ip')
[ -n "$cookie" ] || { echo "sign-in failed" >&2; exit 1; }
pages=(
  "/ui/"
  "/ui/usage?by=model"
  "/ui/usage?by=key"
  "/ui/usage?by=user"
  "/ui/usage?by=upstream"
  "/ui/usage?by=day"
  "/ui/usage?by=model&from=$(date -u -d '89 days ago' +%F)"
  "/ui/usage?by=key&format=csv"
  "/ui/requests"
  "/ui/requests?model=gemini-2.5-pro&status=errors"
  "/ui/requests?user=user7"
  "/ui/requests?fragment=rows"
  "/ui/keys"
  "/ui/users"
  "/ui/pricing"
  "/ui/provider-keys"
  "/ui/upstreams"
  "/ui/audit"
  "/ui/system"
)
out="$tmp/times.tsv"
for page in "${pages[@]}"; do
  for _ in $(seq "$rounds"); do
    curl -sS -o /dev/null -H "cookie: $cookie" -w "$page\t%{http_code}\t%{time_total}\t%{size_download}\n" "$admin$page" >>"$out"
  done
done
python3 - "$out" <<'PY'
import sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    page, code, secs, size = line.rstrip("\n").split("\t")
    rows.setdefault(page, []).append((int(code), float(secs) * 1000, int(size)))
print(f"{'page':58} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KB':>7}")
worst = 0.0
for page, xs in rows.items():
    ms = sorted(x[1] for x in xs)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    codes = sorted({x[0] for x in xs})
    kb = max(x[2] for x in xs) / 1024
    worst = max(worst, p(0.95))
    flag = "" if p(0.95) < 150 and kb < 100 else "  OVER TARGET"
    print(f"{page:58} {','.join(map(str, codes)):>6} {p(0.5):8.1f} {p(0.95):8.1f} {ms[-1]:8.1f} {kb:7.1f}{flag}")
print(f"worst p95: {worst:.1f} ms (target < 150 ms); CSV export is a download, not a page")
PY
