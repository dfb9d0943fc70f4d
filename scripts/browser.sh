#!/usr/bin/env bash
# Install Debian's chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver) for the browser tests in
# tests/browser/, from the distribution's packages (never a browser build downloaded by a tool). Does nothing
# when both are already there; runs apt-get update only when the package lists lack them or are out of date.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
install() { $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

if ! apt-cache show chromium-driver >/dev/null 2>&1; then
  $sudo apt-get update -qq  # a fresh machine has no package lists yet
  install
elif ! install; then
  $sudo apt-get update -qq  # the lists name versions the mirror no longer has
  install
fi
echo "browser: $(/usr/bin/chromium --version)"
