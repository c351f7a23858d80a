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
/**
 * Kernel argument naming the agent channel: `edgebox.channel=vsock` makes the
 * agent listen on vsock; without it the agent uses the virtio-serial port.
 */
export const CHANNEL_BOOT_ARG_PREFIX = 'edgebox.channel=';
/** The vsock port the agent listens on in the guest (Kata's agent uses 1024 too). */
export const VSOCK_AGENT_PORT = 1024;
/** Unix socket the guest's socat relays vsock connections to (only the agent listens there). */
export const GUEST_AGENT_SOCKET = '/run/edgebox/agent.sock';
/**
 * socat (from the Debian package), the guest end of the vsock relay, beside
 * Node in the read-only runtime share: in the initramfs it and its libraries
 * (OpenSSL, Kerberos) would double what every emulated boot unpacks, for a
 * channel most hosts do not use. The libraries Node does not also need sit in
 * GUEST_SOCAT_LIBRARY_DIR.
 */
export const GUEST_SOCAT_PATH = `${GUEST_SHARE_MOUNT}/${GUEST_RUNTIME_DIR}/socat`;
export const GUEST_SOCAT_LIBRARY_DIR = `${GUEST_SHARE_MOUNT}/${GUEST_RUNTIME_DIR}/socat-lib`;
/** Where the Debian package puts socat, and so where the image build takes it from. */
export const DEBIAN_SOCAT_PATH = 'usr/bin/socat';

/** Kernel argument carrying the pod network for eth0: `edgebox.podnet=ADDR/PREFIX,GATEWAY,MTU`. */
export const PODNET_BOOT_ARG_PREFIX = 'edgebox.podnet=';
