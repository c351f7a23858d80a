import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';

export interface OciImageSpec {
  /** Full reference containerd files it under, e.g. edgebox.test/busybox:1. */
  name: string;
  cmd: string[];
}

/**
 * An OCI image layout tar (for `ctr image import`) of one uncompressed layer
 * made from `rootfs`: one image per spec, sharing that layer.
 */
export async function buildOciArchive(rootfs: string, images: OciImageSpec[]): Promise<string> {
  const layout = await mkdtemp(join(tmpdir(), 'edgebox-oci-'));
  const blobs = join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const addBlob = async (data: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(data).digest('hex');
    await writeFile(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layerTar = join(layout, 'layer.tar');
  await runCommand('tar', [
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '-C',
    rootfs,
    '-cf',
    layerTar,
    '.',
  ]);
  const layer = await addBlob(await readFile(layerTar));
  await rm(layerTar);
  const manifests = [];
  for (const image of images) {
    const config = await addBlob(
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: {
            Cmd: image.cmd,
            Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
            WorkingDir: '/',
          },
          rootfs: { type: 'layers', diff_ids: [layer.digest] },
        }),
      ),
    );
    const manifest = await addBlob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
        }),
      ),
    );
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: {
        'io.containerd.image.name': image.name,
        'org.opencontainers.image.ref.name': image.name.split(':').pop(),
      },
    });
  }
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  const archive = `${layout}.tar`;
  await runCommand('tar', ['-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs']);
  await rm(layout, { recursive: true, force: true });
  return archive;
}
