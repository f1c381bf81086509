#!/usr/bin/env bash
# A one-node SLURM cluster on localhost (this machine, its cores and memory) for the integration test.
#   slurm_cluster.sh start   install Debian's slurm-wlm and munge if missing, write slurm.conf (also to
#                            /etc/slurm/slurm.conf, where srun inside a job looks; an existing file not written by
#                            this script is never replaced), start munged, slurmctld and slurmd, wait until the node
#                            is idle; prints the SLURM_CONF to export
#   slurm_cluster.sh stop    stop the daemons started here
# Needs root (daemons run as root: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none). No slurmdbd, so sacct
# is disabled: clients query job states with squeue, kept for MinJobAge seconds after a job ends.
set -euo pipefail
DIR=${CRBNET_SLURM_DIR:-/tmp/crbnet-slurm}
CONF=$DIR/slurm.conf

start() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >&2
    fi
    mkdir -p "$DIR"/{state,spool,log} /run/munge /var/lib/munge /var/log/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    local node cpus mem
    node=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MB, 1 GB left to the system
    if [ -e /etc/slurm/slurm.conf ] && ! grep -q "^# crbnet test cluster" /etc/slurm/slurm.conf; then
        echo "/etc/slurm/slurm.conf exists and is not ours: this machine has a SLURM set-up, not starting" >&2
        return 1
    fi
    cat > "$CONF" <<CONF
# crbnet test cluster (tests/integration/slurm_cluster.sh)
ClusterName=crbnet-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    mkdir -p /etc/slurm
    cp "$CONF" /etc/slurm/slurm.conf
    export SLURM_CONF=$CONF
    /usr/sbin/slurmctld -f "$CONF" -i
    /usr/sbin/slurmd -f "$CONF"
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            echo "SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    echo "the node did not become idle; see $DIR/log" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    for pid in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        [ -s "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    if grep -q "^# crbnet test cluster" /etc/slurm/slurm.conf 2>/dev/null; then
        rm -f /etc/slurm/slurm.conf
    fi
    sleep 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
