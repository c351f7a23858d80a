/**
 * Names both sides agree on without sending them: where the guest mounts the
 * sandbox share, the virtio-fs tag, and the virtio-serial port name.
 */
export const SHARE_TAG = 'edgebox-share';
export const GUEST_SHARE_MOUNT = '/run/share';
export const AGENT_PORT_NAME = 'org.edgebox.agent.0';
/** Kernel argument that makes /init load the agent, report, and power off (bench baseline). */
export const PLAIN_BOOT_ARG = 'edgebox.plain=1';
/** Line /init prints on the console when it hands over to the agent. */
export const INIT_MARKER = 'edgebox-init: starting agent';
/** Directory on the share (read-only) holding the guest's Node binary. */
export const GUEST_RUNTIME_DIR = 'runtime';
/** Kernel argument for the accelerator probe: /init prints PROBE_MARKER and powers off at once. */
export const PROBE_BOOT_ARG = 'edgebox.probe=1';
export const PROBE_MARKER = 'edgebox-probe-ok';
