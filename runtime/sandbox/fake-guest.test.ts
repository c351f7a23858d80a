import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Hypervisor, VmExit, VmHandle, VmSpec } from '../hypervisor/hypervisor.ts';
import { encodeFrame } from '../protocol/framing.ts';
import { PROTOCOL_VERSION } from '../protocol/messages.ts';
import { mountsUnder } from '../sharing/share.ts';
import { Sandbox, type SandboxEvent } from './sandbox.ts';

const ready = {
  v: PROTOCOL_VERSION,
  kind: 'ready',
  agentVersion: 'scripted',
  initUptimeSeconds: 1,
  readyUptimeSeconds: 2,
  agentRssBytes: 1,
  agentAnonBytes: 1,
};

/**
 * A guest whose agent is replaced by the test: a hypervisor double that,
 * instead of booting, serves the agent socket QEMU would and sends what a
 * hostile guest kernel could. The host side (share, disk, virtiofsd,
 * Sandbox) is real.
 */
class ScriptedGuest implements Hypervisor {
  readonly name = 'scripted';
  #socket: Socket | undefined;

  /** Sends frames as the guest's agent would. */
  send(messages: unknown[]): void {
    for (const message of messages)
      this.#socket?.write(encodeFrame(Buffer.from(JSON.stringify(message))));
  }

  async start(spec: VmSpec): Promise<VmHandle> {
    let exit: (e: VmExit) => void = () => undefined;
    const exited = new Promise<VmExit>((resolve) => (exit = resolve));
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      this.#socket = socket;
      this.send([ready]);
    });
    await new Promise<void>((resolve) => server.listen(spec.agentSocketPath, resolve));
    return {
      pid: process.pid,
      startedAt: performance.now(),
      controlReadyAt: performance.now(),
      exited,
      status: () => Promise.resolve('running'),
      diagnostics: () => Promise.resolve(''),
      terminate: async () => {
        this.#socket?.destroy();
        await new Promise((resolve) => server.close(resolve));
        exit({ code: 0, signal: null });
      },
    };
  }
}

let work: string | undefined;
const runRoot = join(tmpdir(), `edgebox-fake-guest-run-${process.pid}`);
afterEach(async () => {
  if (work) await rm(work, { recursive: true, force: true });
  await rm(runRoot, { recursive: true, force: true });
});

describe('sandbox against a guest that speaks for containers it was never given', () => {
  it('drops output, starts and OOM reports for a container the host did not create, and says so', async () => {
    work = await mkdtemp(join(tmpdir(), 'edgebox-fake-guest-'));
    const guest = new ScriptedGuest();
    const hostile = [
      {
        v: PROTOCOL_VERSION,
        kind: 'output',
        containerId: 'ghost',
        stream: 'stdout',
        data: Buffer.from('forged log line\n').toString('base64'),
      },
      { v: PROTOCOL_VERSION, kind: 'started', containerId: 'ghost', pid: 7 },
      { v: PROTOCOL_VERSION, kind: 'oom', containerId: 'ghost' },
      { v: PROTOCOL_VERSION, kind: 'log', level: 'info', message: 'after' },
    ];
    const events: SandboxEvent[] = [];
    const sandbox = await Sandbox.create(
      {
        id: 'scripted',
        accel: 'tcg',
        channel: 'serial',
        diskMiB: 16,
        runRoot,
        image: { kernelPath: '/nonexistent', initramfsPath: '/nonexistent', runtimePath: work },
      },
      { hypervisor: guest },
    );
    try {
      const after = new Promise<void>((resolve) =>
        sandbox.onEvent((e) => {
          events.push(e);
          if (e.type === 'agent-log' && e.message === 'after') resolve();
        }),
      );
      guest.send(hostile);
      await after;
      expect(
        events.filter((e) => ['output', 'container-started', 'container-oom'].includes(e.type)),
      ).toEqual([]);
      const warnings = events.filter((e) => e.type === 'agent-log' && e.level === 'warn');
      expect(warnings).toHaveLength(3);
      for (const w of warnings) expect(w).toMatchObject({ message: /ghost.*did not create/ });
      expect(sandbox.state).toBe('running');
    } finally {
      await sandbox.destroy();
    }
    expect(await mountsUnder(sandbox.runDir)).toEqual([]);
  });
});
