/** Names Kubernetes (and OpenYurt, and edgebox) give to things the ECM reads or writes. */

export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';
export const TAINT_MEMORY_PRESSURE = 'node.kubernetes.io/memory-pressure';
export const TAINT_DISK_PRESSURE = 'node.kubernetes.io/disk-pressure';
export const TAINT_NETWORK_UNAVAILABLE = 'node.kubernetes.io/network-unavailable';
export const TAINT_PID_PRESSURE = 'node.kubernetes.io/pid-pressure';

export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_ZONE_BETA = 'failure-domain.beta.kubernetes.io/zone';
export const LABEL_REGION_BETA = 'failure-domain.beta.kubernetes.io/region';
export const LABEL_EXCLUDE_DISRUPTION = 'node.kubernetes.io/exclude-disruption';
export const LABEL_OS = 'kubernetes.io/os';
export const LABEL_ARCH = 'kubernetes.io/arch';
export const LABEL_OS_BETA = 'beta.kubernetes.io/os';
export const LABEL_ARCH_BETA = 'beta.kubernetes.io/arch';

export const ANNOTATION_AUTONOMY = 'edgebox.io/autonomy';
export const ANNOTATION_AUTONOMY_DURATION = 'edgebox.io/autonomy-duration';
export const ANNOTATION_OPENYURT_AUTONOMY = 'node.beta.openyurt.io/autonomy';
export const ANNOTATION_OPENYURT_AUTONOMY_DURATION = 'node.openyurt.io/autonomy-duration';
export const ANNOTATION_ORIGINAL_TOLERATIONS = 'edgebox.io/original-tolerations';
export const ANNOTATION_MIRROR_POD = 'kubernetes.io/config.mirror';

export const CONDITION_READY = 'Ready';
export const CONDITION_MEMORY_PRESSURE = 'MemoryPressure';
export const CONDITION_DISK_PRESSURE = 'DiskPressure';
export const CONDITION_PID_PRESSURE = 'PIDPressure';
export const CONDITION_NETWORK_UNAVAILABLE = 'NetworkUnavailable';
export const CONDITION_EDGE_AUTONOMY = 'EdgeAutonomy';
export const POD_CONDITION_READY = 'Ready';
export const POD_CONDITION_DISRUPTION_TARGET = 'DisruptionTarget';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
