#!/usr/bin/env bash
# System packages the test suite uses: headless Chromium + ChromeDriver (dashboard tests), Debian's
# docker-compose (validates docker-compose.yml without an engine), Node.js/npm (the Node example) and a Java 17
# runtime (Apache Spark: train/score --engine spark, the tests' local[2] session and standalone cluster).
# Installs them with apt-get when running as root; otherwise the tests that need them skip, saying why.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages missing (${need[*]}); the tests that need them will skip" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "apt-get could not install ${need[*]}; the tests that need them will skip" >&2
exit 0
