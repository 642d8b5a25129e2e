# shellcheck shell=bash
# Shared by the load-test scripts (sourced, from the repository root): installs what is
# missing, builds in release, and gives each script a temporary folder and a list of
# processes that are stopped when it exits.
#   need CMD...                 install these Debian packages if their command is missing
#   one_upstream_config FILE LISTEN ADMIN UPSTREAM MODEL
#                               a Tollgate config with one OpenAI-style upstream for every
#                               model, MODEL priced, its store under $tmp
#   two_dialect_config FILE LISTEN ADMIN UPSTREAM MODEL
#                               a Tollgate config with an OpenAI-style upstream for MODEL
#                               and an Anthropic one for claude-* models, both at UPSTREAM,
#                               both priced, its store under $tmp (apart from the other's)
#   gateway_key FILE            creates a user and prints a new gateway key for it
#   wait_for PORT...            waits (5 s at most each) until something listens there
need() {
  local missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}"; fi
}

one_upstream_config() {
  cat >"$1" <<YAML
server: { listen: ["$2"], threads: 1, shutdown_grace_s: 1 }
admin: { listen: "$3" }
storage: { path: "$tmp/tollgate.db" }
upstreams:
  - { name: mock, kind: openai, base_url: "http://$4", keys: ["sk-load"] }
routes:
  - { models: ["*"], upstreams: [mock] }
pricing:
  "$5": { input: 0.15, output: 0.60, cache_read: 0.075 }
YAML
}

two_dialect_config() {
  cat >"$1" <<YAML
server: { listen: ["$2"], threads: 1, shutdown_grace_s: 1 }
admin: { listen: "$3" }
storage: { path: "$tmp/two-dialect.db" }
upstreams:
  - { name: mock, kind: openai, base_url: "http://$4", keys: ["sk-load"] }
  - { name: mock-anthropic, kind: anthropic, base_url: "http://$4", keys: ["sk-ant-load"] }
routes:
  - { models: ["$5"], upstreams: [mock] }
  - { models: ["claude-*"], upstreams: [mock-anthropic] }
pricing:
  "$5": { input: 0.15, output: 0.60, cache_read: 0.075 }
  "claude-*": { input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }
YAML
}

gateway_key() {
  "$bin/tollgate" -c "$1" user add load >/dev/null
  "$bin/tollgate" -c "$1" key create --user load
}

wait_for() {
  for port in "$@"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  done
}

bash .ci/setup
cargo build --release -q -p tollgate -p tollgate-load
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
