#!/usr/bin/env bash
# Installs (Debian's packages) and starts a one-node Slurm cluster on this machine, as root, for the tests of
# `inna bench --executor slurm`. Idempotent: what is installed is not installed again, a daemon that runs is
# not started again, a slurm.conf that exists is kept unless it is the one this script wrote for another host.
# Usage: sudo .ci/setup-slurm.sh   (prints the node's state at the end; exits non-zero if the node is not up)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-slurm.sh: must run as root (it installs packages and starts system daemons)" >&2
  exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

host="$(hostname)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)"
conf=/etc/slurm/slurm.conf
marker="# written by inna's .ci/setup-slurm.sh"
# KillWait=2: a cancelled job gets SIGKILL 2 s after SIGTERM (submitit's jobs ignore SIGTERM), so that the test of
# `scancel` sees the job die while its run is still going; MinJobAge=60: ended jobs leave squeue after a minute.
wanted="${marker}
ClusterName=local
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
KillWait=2
MinJobAge=60
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP"
reconfigure=0
if [ -f "$conf" ] && ! head -n1 "$conf" | grep -qF "$marker"; then
  echo "setup-slurm.sh: keeping $conf (not written by this script)"
elif [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  mkdir -p /etc/slurm
  printf '%s\n' "$wanted" > "$conf"
  reconfigure=1
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# munge: a key, owned by munge, and the daemon running as munge
if [ ! -f /etc/munge/munge.key ]; then
  mungekey -c
fi
mkdir -p /run/munge
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
running() { pgrep -x "$1" >/dev/null; }
if ! running munged; then
  su -s /bin/sh munge -c munged
fi
if running slurmctld && [ "$reconfigure" = 1 ]; then
  scontrol reconfigure
fi
running slurmctld || slurmctld
running slurmd || slurmd

# the node answers within a few seconds; a node left down by an earlier run is resumed
for _ in $(seq 1 30); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
sinfo
case "$state" in
  idle|mixed|allocated|completing) ;;
  *) echo "setup-slurm.sh: the node ${host} is ${state:-not answering}; see /var/log/slurm/" >&2; exit 1 ;;
esac
