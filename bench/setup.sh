#!/usr/bin/env bash
# Install what the benchmarks need: the load generators (wrk, redis-benchmark, gcc for
# bench/echo_client.c), redis-server as a peer, and pyswoole with its peer servers
# (the `bench` extra: uvicorn, granian, aiohttp, picows, websockets).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[bench]'
python3 -c 'import sys; sys.path.insert(0, "bench"); import harness; print("built", harness.build_echo_client(force=True))'
