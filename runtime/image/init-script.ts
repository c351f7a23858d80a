import {
  GUEST_RUNTIME_DIR,
  GUEST_SHARE_MOUNT,
  INIT_MARKER,
  PLAIN_BOOT_ARG,
  PODNET_BOOT_ARG_PREFIX,
  PROBE_BOOT_ARG,
  PROBE_MARKER,
  SHARE_TAG,
} from '../protocol/guest-layout.ts';

export const GUEST_AGENT_PATH = '/agent/agent.mjs';
export const MODULE_LOAD_ORDER_PATH = '/lib/modules/load-order';

/**
 * /init, PID 1 of the guest. A shell script rather than part of the agent so
 * that PID 1 stays tiny and never dies: it mounts the pseudo file systems,
 * loads the modules in order, mounts the share, runs the agent as its child,
 * reaps orphans while it waits, and reboots (QEMU runs with -no-reboot, so the
 * VM exits) when the agent ends.
 */
export function guestInitScript(): string {
  return `#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
read -r uptime _ < /proc/uptime
case " $(cat /proc/cmdline) " in
  *" ${PROBE_BOOT_ARG} "*) echo "${PROBE_MARKER}"; reboot -f ;;
esac
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "$uptime" > /run/init-uptime
while read -r module; do
  insmod "/lib/modules/$module" || echo "edgebox-init: cannot load $module"
done < ${MODULE_LOAD_ORDER_PATH}
echo "+cpu +cpuset +memory +pids +io" > /sys/fs/cgroup/cgroup.subtree_control
ip link set lo up
podnet=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in ${PODNET_BOOT_ARG_PREFIX}*) podnet="\${arg#${PODNET_BOOT_ARG_PREFIX}}" ;; esac
done
if [ -n "$podnet" ] && [ -e /sys/class/net/eth0 ]; then
  # The pod's address, gateway, MTU and routes, as CNI gave them to the pod interface on the host.
  set -f; oldifs="$IFS"; IFS=,; set -- $podnet; IFS="$oldifs"; set +f
  address="$1"; gateway="$2"; mtu="$3"; shift 3
  ip link set eth0 mtu "$mtu" up && ip addr add "$address" dev eth0
  [ -z "$gateway" ] || ip route add default via "$gateway" || echo "edgebox-init: no route via $gateway"
  for route; do
    case "$route" in
      *@*) ip route add "\${route%@*}" via "\${route#*@}" ;;
      *) ip route add "$route" dev eth0 ;;
    esac || echo "edgebox-init: no route $route"
  done
elif [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
fi
mkdir -p ${GUEST_SHARE_MOUNT}
mount -t virtiofs ${SHARE_TAG} ${GUEST_SHARE_MOUNT} || echo "edgebox-init: no shared file system"
node=${GUEST_SHARE_MOUNT}/${GUEST_RUNTIME_DIR}/node
read -r uptime _ < /proc/uptime
echo "${INIT_MARKER} at $uptime s"
case " $(cat /proc/cmdline) " in
  *" ${PLAIN_BOOT_ARG} "*) $node ${GUEST_AGENT_PATH} --plain ;;
  *)
    $node --max-old-space-size=96 ${GUEST_AGENT_PATH} &
    wait
    ;;
esac
sync
reboot -f
`;
}
