# Sourced by the HTTP bench scripts (bench-http-rounds, bench-http-cores, bench-http-cpu): the
# servers they compare, found and started the same way.

# bench_binary NAME: builds benches/NAME.rs in release and prints the path of its binary.
bench_binary() {
  cargo bench --locked --bench "$1" --no-run 2>&1 | grep -o "target/[^)]*$1-[0-9a-f]*" | head -1
}

# serve_on CPUS PORT COMMAND...: starts COMMAND in the background pinned to CPUS, its pid added
# to PIDS and left in SERVED, and returns once PORT accepts connections; exits the script when
# nothing listens there within 10 s.
serve_on() {
  local cpus=$1 port=$2
  shift 2
  taskset -c "$cpus" "$@" >/dev/null 2>&1 &
  SERVED=$!
  PIDS+=("$SERVED")
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.1; done
  echo "nothing listens on $port" >&2
  exit 1
}
