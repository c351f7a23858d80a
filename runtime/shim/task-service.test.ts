import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { codecFor, type Message } from './codec.ts';
import type { EventTopic } from './events.ts';
import { TaskService } from './task-service.ts';
import { Code } from './ttrpc.ts';

/** The Task service's answers that need no VM: refusals, missing image, unimplemented calls. */
let bundle: string;
let published: EventTopic[];
let service: TaskService;

const podSpec = {
  process: { args: ['sh'], cwd: '/' },
  root: { path: 'rootfs' },
  linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'network' }, { type: 'mount' }] },
};

beforeEach(async () => {
  bundle = await mkdtemp(join(tmpdir(), 'edgebox-bundle-'));
  published = [];
  service = new TaskService({
    config: {
      guestImageDir: join(bundle, 'no-image-here'),
      runRoot: join(bundle, 'run'),
      memoryMiB: 256,
      cpus: 1,
      accel: 'tcg',
    },
    events: { publish: (topic: EventTopic, _event: Message) => void published.push(topic) },
    log: silentLogger(),
    onShutdown: () => undefined,
  });
});

afterEach(async () => {
  await rm(bundle, { recursive: true, force: true });
});

const createRequest = codecFor('containerd.task.v2.CreateTaskRequest');

async function create(spec: unknown): Promise<unknown> {
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  const handler = service.methods().get('Create')!;
  return handler(createRequest.encode({ id: 'pod1', bundle, rootfs: [], stdout: '', stderr: '' }));
}

describe('TaskService without a VM', () => {
  it('fails Create with where the guest image should be and how to build it', async () => {
    await expect(create(podSpec)).rejects.toMatchObject({
      code: Code.failedPrecondition,
      message: expect.stringMatching(
        /^no edgebox guest image at .*no-image-here .*edgebox sandbox image build --out .*no-image-here/,
      ) as unknown,
    });
    expect(published).toEqual([]);
  });

  it.each([
    [
      'host network',
      { ...podSpec, linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }] } },
      /^linux\.namespaces: no network namespace \(the pod asks for hostNetwork\)/,
    ],
    [
      'a privileged container',
      { ...podSpec, linux: { ...podSpec.linux, devices: [{ path: '/dev/sda' }] } },
      /^linux\.devices\[0\] \(\/dev\/sda\): host devices cannot be passed into the VM/,
    ],
    [
      'a CRI container without its pod',
      { ...podSpec, annotations: { 'io.kubernetes.cri.container-type': 'container' } },
      /io\.kubernetes\.cri\.sandbox-id/,
    ],
  ])('refuses %s, naming the field', async (_name, spec, message) => {
    await expect(create(spec)).rejects.toMatchObject({
      code: Code.invalidArgument,
      message: expect.stringMatching(message) as unknown,
    });
    expect(published).toEqual([]);
  });

  it('answers Checkpoint with a clear NotImplemented', async () => {
    await expect(service.methods().get('Checkpoint')!(Buffer.alloc(0))).rejects.toMatchObject({
      code: Code.unimplemented,
      message: 'checkpoints are not implemented by the edgebox runtime',
    });
  });
});
