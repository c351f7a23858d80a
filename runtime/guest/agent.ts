import { readFile } from 'node:fs/promises';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from '../protocol/framing.ts';
import {
  AGENT_PORT_NAME,
  GUEST_AGENT_SOCKET,
  GUEST_SHARE_MOUNT,
  GUEST_SOCAT_LIBRARY_DIR,
  GUEST_SOCAT_PATH,
  VSOCK_AGENT_PORT,
} from '../protocol/guest-layout.ts';
import {
  PROTOCOL_VERSION,
  hostRequestSchema,
  type GuestMessage,
  type HostRequest,
} from '../protocol/messages.ts';
import { ContainerManager } from './containers.ts';
import { openAgentPort } from './port.ts';
import { bootChannel, openVsockPort } from './vsock-port.ts';
import { OutputCoalescer } from './output.ts';

/**
 * The guest agent: PID 1's child in the sandbox VM. It owns the containers of
 * the pod and answers the host over one framed channel. It trusts the host
 * (the host built this VM) but still validates each request against the
 * shared schema, because a malformed request must fail alone, not the agent.
 */

export const AGENT_VERSION = '1.0.0';
const MAX_UNSENT_BYTES = 4 * 1024 * 1024;

async function uptimeSeconds(path = '/proc/uptime'): Promise<number> {
  const text = await readFile(path, 'utf8').catch(() => '0');
  return Number(text.trim().split(/\s+/)[0]) || 0;
}

async function anonymousMemory(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function main(): Promise<void> {
  if (process.argv.includes('--plain')) {
    // Bench baseline: the same boot up to a loaded agent, without a host on the other end.
    process.stdout.write(`edgebox-agent: loaded at ${await uptimeSeconds()} s\n`);
    return;
  }
  const cmdline = await readFile('/proc/cmdline', 'utf8').catch(() => '');
  const port =
    bootChannel(cmdline) === 'vsock'
      ? await openVsockPort({
          socketPath: GUEST_AGENT_SOCKET,
          port: VSOCK_AGENT_PORT,
          socatPath: GUEST_SOCAT_PATH,
          socatLibraryPath: GUEST_SOCAT_LIBRARY_DIR,
        })
      : await openAgentPort(AGENT_PORT_NAME);
  let outputPaused = false;
  const send = (message: GuestMessage): void => {
    if (port.output.writableEnded) return;
    const flowing = port.output.write(encodeFrame(Buffer.from(JSON.stringify(message))));
    // The host reads at its own pace; containers wait for it rather than the agent buffering.
    if (!flowing && !outputPaused && port.output.writableLength > MAX_UNSENT_BYTES) {
      outputPaused = true;
      containers.setOutputPaused(true);
      port.output.once('drain', () => {
        outputPaused = false;
        containers.setOutputPaused(false);
      });
    }
  };
  const log = (level: 'info' | 'warn' | 'error', message: string): void =>
    send({ v: PROTOCOL_VERSION, kind: 'log', level, message: message.slice(0, 4000) });

  const coalescer = new OutputCoalescer((containerId, execId, stream, data) =>
    send({
      v: PROTOCOL_VERSION,
      kind: 'output',
      containerId,
      ...(execId === undefined ? {} : { execId }),
      stream,
      data: data.toString('base64'),
    }),
  );
  const containers = new ContainerManager(
    {
      output: (containerId, execId, stream, data) =>
        coalescer.add(containerId, execId, stream, data),
      started: (containerId, execId, pid) =>
        send({
          v: PROTOCOL_VERSION,
          kind: 'started',
          containerId,
          ...(execId === undefined ? {} : { execId }),
          pid,
        }),
      exited: (containerId, execId, exitCode, signal) => {
        coalescer.flush();
        send({
          v: PROTOCOL_VERSION,
          kind: 'exited',
          containerId,
          ...(execId === undefined ? {} : { execId }),
          exitCode,
          ...(signal === undefined ? {} : { signal }),
        });
      },
      oom: (containerId) => send({ v: PROTOCOL_VERSION, kind: 'oom', containerId }),
    },
    GUEST_SHARE_MOUNT,
  );

  /**
   * Ends every container, then the agent; /init then reboots the VM. With the
   * host gone (`hostGone`) nothing is written: a write to a port nobody reads
   * would block. process.exit() would hang too: libuv joins its thread pool at
   * exit and one of its threads sits in a blocking read() of the port.
   */
  let stopping = false;
  const shutdown = async (hostGone: boolean): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const die = (): void => {
      process.kill(process.pid, 'SIGKILL');
    };
    setTimeout(die, 2000).unref();
    await containers.killAll();
    if (hostGone) die();
    coalescer.flush();
    port.output.end(die);
  };

  const handle = async (request: HostRequest): Promise<unknown> => {
    switch (request.op) {
      case 'createContainer':
        return containers.create(request.spec);
      case 'startContainer':
        return { pid: await containers.start(request.containerId) };
      case 'exec':
        return { pid: await containers.exec(request.containerId, request.execId, request.process) };
      case 'signal':
        return containers.signal(request.containerId, request.signal, request.execId);
      case 'stdin':
        return containers.writeStdin(
          request.containerId,
          request.execId,
          Buffer.from(request.data, 'base64'),
        );
      case 'closeStdin':
        return containers.closeStdin(request.containerId, request.execId);
      case 'resizeTerminal':
        return containers.resizeTerminal(
          request.containerId,
          request.execId,
          request.rows,
          request.cols,
        );
      case 'stats':
        return containers.stats(request.containerId);
      case 'updateResources':
        return containers.update(request.containerId, request.resources);
      case 'deleteContainer':
        return containers.delete(request.containerId);
      case 'shutdown':
        return undefined;
    }
  };

  const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES);
  port.input.on('data', (chunk: Buffer | string) => {
    let frames: Buffer[];
    try {
      frames = decoder.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    } catch (err) {
      log('error', `dropping the channel: ${(err as Error).message}`);
      void shutdown(false);
      return;
    }
    for (const frame of frames) {
      let json: unknown;
      try {
        json = JSON.parse(frame.toString('utf8'));
      } catch {
        log('warn', 'ignored a request that is not JSON');
        continue;
      }
      const parsed = hostRequestSchema.safeParse(json);
      if (!parsed.success) {
        const id = (json as { id?: unknown }).id;
        const message = `invalid request: ${parsed.error.issues[0]?.message ?? 'schema mismatch'}`;
        if (typeof id === 'number' && Number.isInteger(id) && id >= 0) {
          send({ v: PROTOCOL_VERSION, kind: 'error', id, message });
        } else log('warn', message);
        continue;
      }
      const request = parsed.data;
      handle(request).then(
        (result) => {
          send({ v: PROTOCOL_VERSION, kind: 'response', id: request.id, ok: true, result });
          if (request.op === 'shutdown') void shutdown(false);
        },
        (err: unknown) =>
          send({
            v: PROTOCOL_VERSION,
            kind: 'error',
            id: request.id,
            message: (err instanceof Error ? err.message : String(err)).slice(0, 4000),
          }),
      );
    }
  });
  // The host went away: nobody is left to report to, so end the sandbox.
  port.input.on('end', () => void shutdown(true));
  port.input.on('error', () => void shutdown(true));

  send({
    v: PROTOCOL_VERSION,
    kind: 'ready',
    agentVersion: AGENT_VERSION,
    initUptimeSeconds: await uptimeSeconds('/run/init-uptime'),
    readyUptimeSeconds: await uptimeSeconds(),
    agentRssBytes: process.memoryUsage().rss,
    agentAnonBytes: await anonymousMemory(),
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`edgebox-agent: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
