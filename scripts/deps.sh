#!/usr/bin/env bash
# Installs what tapegrad needs from Debian 12's packages (run as root). Sourced by the scripts.
set -euo pipefail
TAPEGRAD_PACKAGES=(cmake g++ make pkg-config
  libboost-container-dev libfmt-dev doctest-dev libopenblas-dev zlib1g-dev
  openmpi-bin libopenmpi-dev
  dataset-fashion-mnist graphviz)
TAPEGRAD_PACKAGES+=(fortunes)  # gptdemo: the text of examples/char_gpt (/usr/share/games/fortunes)
missing=()
for p in "${TAPEGRAD_PACKAGES[@]}" ${TAPEGRAD_EXTRA_PACKAGES:-}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "tapegrad: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
