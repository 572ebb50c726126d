#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine (controller + compute node
# on the same host) so CI can run the workflow through
# snakemake-executor-plugin-slurm against a real scheduler.
#
# - Runs as root, needs no systemd: munged, slurmctld and slurmd are started
#   directly as daemons (logs in /var/log/slurm/ and /var/log/munge/).
# - Idempotent: safe to run again while the daemons are up (then it only checks
#   the node), after they were killed (it restarts them), and on a fresh
#   machine (it apt-installs slurm-wlm and munge first).
# - Ends by printing the node's sinfo line; exits non-zero with a message if
#   the node does not become usable within SLURM_UP_TIMEOUT seconds.
#
# Environment knobs (all optional):
#   SLURM_UP_TIMEOUT   seconds to wait for the node to be idle   (default 60)
#   SLURM_PARTITION    name of the default partition             (default debug)
#   SLURM_MEM_MARGIN_MB memory kept back from RealMemory         (default: max(512, 5 %))
#   SLURM_FAKE_GPUS    advertise N *fake* GPUs (gres/gpu backed by /dev/null,
#                      no real device) so that jobs asking for --gpus get
#                      scheduled; lets CI exercise a profile's GPU request.
#                      Jobs still run on CPU.                   (default 0 = none)
set -euo pipefail

TIMEOUT="${SLURM_UP_TIMEOUT:-60}"
PARTITION="${SLURM_PARTITION:-debug}"
FAKE_GPUS="${SLURM_FAKE_GPUS:-0}"
# every fake gres/gpu needs its own File=; any distinct existing device will do
FAKE_GPU_DEVS=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
GRES_CONF="$CONF_DIR/gres.conf"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

log() { echo "[slurm-up] $*"; }
die() {
    echo "[slurm-up] ERROR: $*" >&2
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [[ -s "$f" ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 25 "$f" >&2 || true
        fi
    done
    exit 1
}

usage_error() { echo "[slurm-up] ERROR: $*" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || usage_error "must run as root"
if ! [[ "$FAKE_GPUS" =~ ^[0-9]+$ ]] || (( FAKE_GPUS > ${#FAKE_GPU_DEVS[@]} )); then
    usage_error "SLURM_FAKE_GPUS must be an integer from 0 to ${#FAKE_GPU_DEVS[@]}"
fi
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || usage_error "SLURM_UP_TIMEOUT must be an integer"

# --------------------------------------------------------------------------
# 1. packages
# --------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v munged >/dev/null 2>&1 || ! command -v sinfo >/dev/null 2>&1; then
    log "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi
command -v slurmctld >/dev/null 2>&1 || die "slurmctld still missing after apt-get install"

# --------------------------------------------------------------------------
# 2. munge
# --------------------------------------------------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
chown munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/log/munge
chmod 0711 /var/lib/munge
chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if ! munge_ok; then
    log "starting munged"
    # a munged killed with -9 leaves its pid and lock files behind; nothing
    # answers on the socket, so they are stale and safe to remove
    rm -f /run/munge/munged.pid /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged || die "munged failed to start"
    for _ in $(seq 1 20); do munge_ok && break; sleep 0.5; done
    munge_ok || die "munged started but munge -n | unmunge fails"
fi
log "munge OK"

# --------------------------------------------------------------------------
# 3. slurm.conf for exactly one node: this machine, sized at run time
# --------------------------------------------------------------------------
NODE="$(hostname -s)"
CPUS="$(nproc)"
MEM_TOTAL_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
MARGIN_MB="${SLURM_MEM_MARGIN_MB:-$(( MEM_TOTAL_MB / 20 > 512 ? MEM_TOTAL_MB / 20 : 512 ))}"
REAL_MEM_MB=$(( MEM_TOTAL_MB - MARGIN_MB ))
(( REAL_MEM_MB > 256 )) || die "too little memory: MemTotal=${MEM_TOTAL_MB} MB"

# The node name must be what `hostname -s` says (slurmd looks itself up by
# it); the address is pinned to loopback so name resolution cannot break it.
mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
NEW_CONF="$(mktemp)"
NEW_GRES="$(mktemp)"
trap 'rm -f "$NEW_CONF" "$NEW_GRES"' EXIT
GRES_NODE=""
GRES_TYPES="# no GRES (SLURM_FAKE_GPUS=0)"
if (( FAKE_GPUS > 0 )); then
    GRES_NODE=" Gres=gpu:${FAKE_GPUS}"
    GRES_TYPES="GresTypes=gpu"
    {
        echo "# Written by .ci/slurm-up.sh -- FAKE GPUs: scheduling slots only, no device."
        echo "AutoDetect=off"
        for (( i = 0; i < FAKE_GPUS; i++ )); do
            echo "NodeName=${NODE} Name=gpu File=${FAKE_GPU_DEVS[$i]}"
        done
    } >"$NEW_GRES"
fi
cat >"$NEW_CONF" <<EOF
# Written by .ci/slurm-up.sh -- one-node test cluster (controller = compute node).
ClusterName=gradsweep-ci
${GRES_TYPES}
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
SwitchType=switch/none
# no cgroups needed (works inside containers / gVisor)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd / accounting
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# jobs that ask for no memory get this much per CPU instead of the whole node
DefMemPerCPU=1000
# keep finished jobs visible to squeue (snakemake's status checks) for 15 min
MinJobAge=900
# a DOWN node comes back by itself as soon as its slurmd registers again
ReturnToService=2
# trust the node definition below rather than draining on probed hardware
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM_MB}${GRES_NODE} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF

CONF_CHANGED=0
if [[ ! -f "$CONF" ]] || ! cmp -s "$NEW_CONF" "$CONF"; then
    CONF_CHANGED=1
    install -m 0644 "$NEW_CONF" "$CONF"
    log "wrote $CONF (node ${NODE}: CPUs=${CPUS} RealMemory=${REAL_MEM_MB} MB${GRES_NODE})"
fi
if (( FAKE_GPUS > 0 )); then
    if [[ ! -f "$GRES_CONF" ]] || ! cmp -s "$NEW_GRES" "$GRES_CONF"; then
        CONF_CHANGED=1
        install -m 0644 "$NEW_GRES" "$GRES_CONF"
        log "wrote $GRES_CONF (${FAKE_GPUS} fake GPUs)"
    fi
elif [[ -f "$GRES_CONF" ]]; then
    CONF_CHANGED=1
    rm -f "$GRES_CONF"
    log "removed $GRES_CONF"
fi

# --------------------------------------------------------------------------
# 4. daemons
# --------------------------------------------------------------------------
# true if the process exists and is not a zombie (a killed daemon whose parent
# has not reaped it yet still answers kill -0)
alive() {
    local pid=$1 st
    kill -0 "$pid" 2>/dev/null || return 1
    st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# pid of a running daemon, from its pid file; empty if it is not running.
daemon_pid() {
    local pidfile=$1 name=$2 pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
        echo "$pid"
    fi
}

stop_daemon() {
    local pidfile=$1 name=$2 pid
    pid="$(daemon_pid "$pidfile" "$name")"
    [[ -n "$pid" ]] || return 0
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do alive "$pid" || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

if (( CONF_CHANGED )); then
    # the node definition is read at start-up: restart whatever is running
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
fi

if [[ -z "$(daemon_pid "$CTLD_PID" slurmctld)" ]]; then
    log "starting slurmctld"
    rm -f "$CTLD_PID"
    # state saved under another ClusterName makes slurmctld refuse to start
    if [[ -f "$STATE_DIR/clustername" ]] && [[ "$(cat "$STATE_DIR/clustername")" != gradsweep-ci ]]; then
        log "discarding controller state of cluster '$(cat "$STATE_DIR/clustername")'"
        rm -f "$STATE_DIR/clustername"
    fi
    # -i: ignore errors in saved state (e.g. after a kill -9) instead of refusing to start
    slurmctld -i || die "slurmctld failed to start"
fi
# wait for the controller to answer before starting slurmd
for _ in $(seq 1 "$TIMEOUT"); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 1
done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer 'scontrol ping'"

if [[ -z "$(daemon_pid "$SLURMD_PID" slurmd)" ]]; then
    log "starting slurmd"
    rm -f "$SLURMD_PID"
    slurmd || die "slurmd failed to start"
fi

# --------------------------------------------------------------------------
# 5. wait for the node to be usable
# --------------------------------------------------------------------------
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }

deadline=$(( SECONDS + TIMEOUT ))
state=""
while (( SECONDS < deadline )); do
    state="$(node_state)"
    case "$state" in
        idle|mixed|allocated|completing)
            break ;;
        down|drain*|fail*|inval*|down~)  # not "down*": that only means slurmd has not registered yet
            log "node $NODE is '$state' ($(sinfo -h -N -n "$NODE" -o '%E')), resuming"
            scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done

case "$state" in
    idle|mixed|allocated|completing)
        log "node $NODE is $state"
        sinfo -N -o '%N %P %T %c %m %G' -n "$NODE"
        ;;
    *)
        sinfo -N -o '%N %P %T %c %m %E' >&2 || true
        die "node $NODE did not become idle within ${TIMEOUT}s (state: '${state:-unknown}')"
        ;;
esac
