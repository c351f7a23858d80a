import WebSocket from 'ws';

/**
 * A client of the streaming server a CRI Exec/Attach URL points at, speaking
 * Kubernetes' remotecommand WebSocket protocol `v4.channel.k8s.io` (what
 * containerd 1.6 serves; v5's stdin close is newer): every binary message
 * starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final status
 * (a metav1.Status in JSON), 4 terminal size (`{"Width":..,"Height":..}`).
 */
export const REMOTE_COMMAND_PROTOCOL = 'v4.channel.k8s.io';

const Channel = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4 } as const;

export interface RemoteCommandStatus {
  status: 'Success' | 'Failure';
  reason?: string;
  details?: { causes?: { reason?: string; message?: string }[] };
}

export interface RemoteCommandSession {
  /** stdout (with a terminal, all output) received so far. */
  readonly stdout: () => string;
  readonly stderr: () => string;
  send(data: string): void;
  resize(size: { width: number; height: number }): void;
  /** Resolves once stdout contains `text` (an attach never ends by itself). */
  stdoutContains(text: string): Promise<void>;
  close(): void;
  /** Resolves with the status the server sends when the process ended (the connection then closes). */
  readonly done: Promise<RemoteCommandStatus>;
}

export async function openRemoteCommand(url: string): Promise<RemoteCommandSession> {
  const socket = new WebSocket(url, [REMOTE_COMMAND_PROTOCOL]);
  let stdout = '';
  let stderr = '';
  let status: RemoteCommandStatus | undefined;
  const watchers = new Set<() => void>();
  const done = new Promise<RemoteCommandStatus>((resolve, reject) => {
    socket.on('message', (raw: Buffer) => {
      const channel = raw[0];
      const data = raw.subarray(1).toString();
      if (channel === Channel.stdout) {
        stdout += data;
        for (const watch of watchers) watch();
      } else if (channel === Channel.stderr) stderr += data;
      else if (channel === Channel.status && data !== '')
        status = JSON.parse(data) as RemoteCommandStatus;
    });
    socket.on('close', () =>
      status ? resolve(status) : reject(new Error('the stream closed without a status')),
    );
    socket.on('error', reject);
  });
  // Handled here too: an attach that the test closes itself never gets a status.
  done.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const sendOn = (channel: number, data: string): void =>
    socket.send(Buffer.concat([Buffer.from([channel]), Buffer.from(data)]));
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    send: (data) => sendOn(Channel.stdin, data),
    resize: ({ width, height }) =>
      sendOn(Channel.resize, JSON.stringify({ Width: width, Height: height })),
    stdoutContains: (text) =>
      new Promise<void>((resolve, reject) => {
        const watch = (): void => {
          if (!stdout.includes(text)) return;
          watchers.delete(watch);
          resolve();
        };
        watchers.add(watch);
        socket.once('close', () => reject(new Error(`the stream closed before ${text}`)));
        watch();
      }),
    close: () => socket.close(),
    done,
  };
}

/** The exit code a v4 status carries (Success: 0; NonZeroExitCode: its ExitCode cause). */
export function exitCodeOf(status: RemoteCommandStatus): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message === undefined ? undefined : Number(cause.message);
}
