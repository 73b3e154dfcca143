#!/usr/bin/env bash
# Installs what serverswap needs to build and test, from Debian's packages. Idempotent.
set -euo pipefail
packages=(build-essential cmake pkg-config libuv1-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev curl python3 clang-format
          # fuzz targets (libFuzzer ships with clang's runtime)
          clang libclang-rt-14-dev
          # reference implementations the environment contracts are checked against
          libsystemd-dev libserver-starter-perl
          # third-party servers swapped in tests, and the benchmark's peers and plot
          gunicorn lighttpd wrk gnuplot-nox
          # docs/fleet.md's Ansible play, run against localhost in a test
          ansible-core)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js for the Node client's tests: any node >= 18 will do (Debian's nodejs is 18).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
