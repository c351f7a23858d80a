// The ECM's OCI image, built without a daemon by umoci (Debian's): the
// payload, the shared libraries the shipped Node needs, and a passwd entry
// for the unprivileged user the Deployment runs as. Written as an OCI layout
// tarball that `ctr image import` and `skopeo copy oci-archive:` both read.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { sharedLibraries } from '../../runtime/image/guest-node.ts';
import { BIN_DIR, INSTALL_DIR, REPO, readPackageJson, stagePayload } from './payload.ts';
import { runTool } from './run-tool.ts';

/** The user deploy/ecm/deployment.yaml runs as (runAsUser/runAsGroup). */
export const ECM_USER = 65532;

const kustomizationSchema = z.object({
  images: z.array(z.object({ name: z.string(), newName: z.string(), newTag: z.string() })),
});

/**
 * The image's name and tag, as deploy/ecm/kustomization.yaml gives them: the
 * manifests are the one place they are decided; the build refuses a tag
 * that is not the package version.
 */
export function ecmImageReference(): { name: string; tag: string } {
  const file = join(REPO, 'deploy/ecm/kustomization.yaml');
  const kustomization = kustomizationSchema.parse(parse(readFileSync(file, 'utf8')));
  const image = kustomization.images.find((i) => i.name === 'edgebox');
  if (!image) throw new Error(`${file}: no images entry for "edgebox"`);
  const { version } = readPackageJson();
  if (image.newTag !== version) {
    throw new Error(
      `${file}: the ECM image's tag ${image.newTag} is not the package version ${version}`,
    );
  }
  return { name: image.newName, tag: image.newTag };
}

/** What runs with no arguments (`ctr run` of the image): the version; the Deployment gives `edgebox ecm`. */
const DEFAULT_COMMAND = ['edgebox', '--version'];

export async function buildEcmImage(
  work: string,
  out: string,
): Promise<{ reference: string; file: string }> {
  const { name, tag } = ecmImageReference();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const layout = join(work, 'layout');
  const bundle = join(work, 'bundle');
  const image = `${layout}:${tag}`;
  runTool('umoci', ['init', '--layout', layout]);
  runTool('umoci', ['new', '--image', image]);
  runTool('umoci', ['unpack', '--image', image, bundle]);
  const rootfs = join(bundle, 'rootfs');
  await stagePayload(rootfs);
  for (const lib of await sharedLibraries(join(rootfs, INSTALL_DIR, 'node'))) {
    mkdirSync(join(rootfs, dirname(lib.path)), { recursive: true });
    copyFileSync(lib.source, join(rootfs, lib.path));
  }
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(
    join(rootfs, 'etc/passwd'),
    `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${ECM_USER}:${ECM_USER}:nonroot:/home/nonroot:/sbin/nologin\n`,
  );
  writeFileSync(join(rootfs, 'etc/group'), `root:x:0:\nnonroot:x:${ECM_USER}:\n`);
  mkdirSync(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  runTool('umoci', ['repack', '--image', image, bundle]);
  const { version, description } = readPackageJson();
  runTool('umoci', [
    'config',
    '--image',
    image,
    '--config.user',
    `${ECM_USER}:${ECM_USER}`,
    '--config.env',
    `PATH=${BIN_DIR}:/bin`,
    '--config.workingdir',
    '/',
    ...DEFAULT_COMMAND.flatMap((word) => ['--config.cmd', word]),
    '--config.exposedports',
    '10290/tcp',
    '--os',
    'linux',
    '--architecture',
    'amd64',
    '--author',
    'edgebox',
    '--config.label',
    `org.opencontainers.image.version=${version}`,
    '--config.label',
    `org.opencontainers.image.title=edgebox-ecm`,
    '--config.label',
    `org.opencontainers.image.description=${description}: the edge controller-manager`,
  ]);
  runTool('umoci', ['gc', '--layout', layout]);
  // containerd names an imported image after this annotation (ref.name alone is only the tag).
  const indexPath = join(layout, 'index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as {
    manifests: { annotations?: Record<string, string> }[];
  };
  for (const manifest of index.manifests) {
    manifest.annotations = {
      ...manifest.annotations,
      'io.containerd.image.name': `${name}:${tag}`,
    };
  }
  writeFileSync(indexPath, JSON.stringify(index));
  mkdirSync(dirname(out), { recursive: true });
  runTool('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-cf',
    out,
    '-C',
    layout,
    '.',
  ]);
  return { reference: `${name}:${tag}`, file: out };
}
