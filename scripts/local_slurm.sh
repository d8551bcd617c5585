#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian's packages (slurmctld,
# slurmd, slurm-client, munge), without systemd: for trying profiles/slurm before a
# real cluster, and for tests/test_slurm.py. As root (slurmd starts jobs as their user).
#
#   scripts/local_slurm.sh start DIR   # munged, slurmctld, slurmd; state and logs in DIR
#   scripts/local_slurm.sh stop DIR
#
# `start DIR --fake-gpu` declares one GPU the node does not have (a gres whose device
# file is /dev/null): SLURM then places a GPU job as a cluster would (--gpus=1,
# CUDA_VISIBLE_DEVICES), and a job that tries to use the GPU fails (tests/test_slurm.py
# checks exactly that).
#
# The configuration is /etc/slurm/slurm.conf, where SLURM's commands look for it: the
# executor plugin's job step removes SLURM_* variables (SLURM_CONF among them) before it
# calls `srun` inside each job. An existing slurm.conf not written by this script is
# never overwritten; `stop` removes the one it wrote.
# No accounting database (slurmdbd): `sacct` cannot answer, so job status comes from
# `squeue`, which lists a finished job for MinJobAge seconds (300 here; the executor
# plugin wants at least 3 x its first status-check interval). docs/cluster.md.
set -euo pipefail

usage() { echo "usage: $0 start DIR [--fake-gpu] | stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
fake_gpu=no
if [ $# -eq 3 ]; then
  [ "$3" = --fake-gpu ] && [ "$action" = start ] || usage
  fake_gpu=yes
fi
conf=/etc/slurm/slurm.conf
gres=/etc/slurm/gres.conf
marker="# Written by scripts/local_slurm.sh"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "local_slurm: $what did not come up in ${seconds}s; logs in $dir" >&2
  return 1
}

start() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "local_slurm: run as root (slurmd starts each job as its user)" >&2; exit 1
  fi
  for tool in munged slurmctld slurmd sbatch squeue scontrol; do
    command -v "$tool" >/dev/null || {
      echo "local_slurm: $tool not found; apt-get install slurmctld slurmd slurm-client munge" >&2
      exit 1
    }
  done
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    echo "local_slurm: a slurmctld or slurmd is already running on this machine" >&2; exit 1
  fi
  for file in "$conf" "$gres"; do
    if [ -f "$file" ] && ! head -n 1 "$file" | grep -qF "$marker"; then
      echo "local_slurm: $file exists and is not ours; not touching a configured cluster" >&2
      exit 1
    fi
  done
  # munge authenticates every SLURM message; start it unless one already answers.
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge
    munged --force
    touch "$dir/munged.started"
    wait_for 10 munged sh -c 'munge -n | unmunge'
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$(dirname "$conf")"
  local node_gres=""
  rm -f "$gres"
  if [ "$fake_gpu" = yes ]; then
    node_gres=" Gres=gpu:1"
    printf '%s for %s: a GPU without a device.\nNodeName=%s Name=gpu File=/dev/null\n' \
      "$marker" "$dir" "$(hostname -s)" > "$gres"
  fi
  cat > "$conf" <<EOF
$marker for $dir: one node, this machine, loopback only.
ClusterName=modelcollapse
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
MinJobAge=300
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem$node_gres State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -c -f "$conf"   # -c: no job state from an earlier cluster in DIR
  wait_for 30 slurmctld scontrol ping
  slurmd -f "$conf"
  wait_for 30 "the node" sh -c "sinfo -h -N -o %T | grep -qx idle"
  echo "local_slurm: up (sinfo, sbatch, squeue; state and logs in $dir)"
}

stop() {
  local name pid
  for name in slurmd slurmctld; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  for file in "$conf" "$gres"; do
    if [ -f "$file" ] && head -n 1 "$file" | grep -qF "$marker for $dir:"; then
      rm -f "$file"
    fi
  done
  if [ -f "$dir/munged.started" ]; then
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "$dir/munged.started"
  fi
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
