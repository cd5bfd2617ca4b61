#!/usr/bin/env bash
# Installs the independent Python clients some end-to-end tests use, from PyPI, into
# ${STRAIT_E2E_PYTHONPATH:-/var/tmp/strait-py} (outside the clone, reused between runs):
# aioquic (an HTTP/3 client, tests/tools/h3get.py) and tlslite-ng with kyber-py (a TLS 1.3
# client offering X25519MLKEM768, tests/tools/pqhello.py). The gateway itself needs none of them.
set -euo pipefail
dest="${STRAIT_E2E_PYTHONPATH:-/var/tmp/strait-py}"
if PYTHONPATH="$dest" python3 -c "import aioquic, tlslite, kyber_py" 2>/dev/null; then
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "installing python3-pip"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
# Pinned: the versions the tests were written against.
python3 -m pip install -q --disable-pip-version-check --target "$dest" \
  aioquic==1.2.0 tlslite-ng==0.8.2 kyber-py==1.2.0 ecdsa==0.19.2
