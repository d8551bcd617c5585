#!/usr/bin/env bash
# What the tests need on a fresh machine (README, "The two commands"): the pinned Python
# packages; from Debian, chromium (tests/test_plots.py loads the HTML report in it) and
# SLURM with munge (tests/test_slurm.py starts a one-node cluster: scripts/local_slurm.sh);
# and the SLURM executor plugin in a virtual environment of its own, which sees these
# packages (MODELCOLLAPSE_SLURM_VENV; beside the workflow's, the plugin would slow every
# Snakemake start: requirements-slurm.txt). Installs only what is missing; apt-get needs
# root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -r requirements-dev.txt
pip install --no-deps -r requirements-nodeps.txt

have() { command -v "$1" >/dev/null 2>&1; }
apt=()
if ! have chromium && ! have chromium-browser; then apt+=(chromium); fi
for tool in slurmctld slurmd sbatch munged; do
  if ! have "$tool"; then apt+=(slurmctld slurmd slurm-client munge); break; fi
done
if [ ${#apt[@]} -gt 0 ]; then
  if ! have apt-get; then
    echo "setup_tests: install ${apt[*]} (Chromium loads the HTML report; SLURM runs the cluster test)" >&2
    exit 1
  fi
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${apt[@]}"; then
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${apt[@]}"
  fi
fi

venv=${MODELCOLLAPSE_SLURM_VENV:-$HOME/.cache/modelcollapse/venv-slurm}
if [ ! -x "$venv/bin/python" ]; then
  python -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install -q -r requirements-slurm.txt
