// `npm run package`: the artefacts an operator installs, under dist/packages/:
//   edgebox_<version>_<arch>.deb         (dpkg -i on a node; scripts/package/debian-package.ts)
//   edgebox-ecm_<version>.oci.tar        (ctr image import, skopeo copy oci-archive:; scripts/package/ecm-image.ts)
// `npm run build` runs first (the script in package.json). `--only deb|image`
// builds one of them; `--out DIR` writes them (and the scratch trees) there.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { rmSync } from 'node:fs';
import { buildDebianPackage } from './package/debian-package.ts';
import { buildEcmImage } from './package/ecm-image.ts';
import { REPO, readPackageJson } from './package/payload.ts';

const { values } = parseArgs({ options: { only: { type: 'string' }, out: { type: 'string' } } });
const out = resolve(values.out ?? join(REPO, 'dist/packages'));
if (values.only !== undefined && values.only !== 'deb' && values.only !== 'image') {
  process.stderr.write(`npm run package: --only ${values.only}: expected deb or image\n`);
  process.exit(2);
}
const { version } = readPackageJson();
const work = join(out, 'work');
try {
  if (values.only !== 'deb') {
    const image = await buildEcmImage(
      join(work, 'ecm'),
      join(out, `edgebox-ecm_${version}.oci.tar`),
    );
    process.stdout.write(`${image.file}: ${image.reference}\n`);
  }
  if (values.only !== 'image') {
    const deb = await buildDebianPackage(join(work, 'deb'), out);
    process.stdout.write(`${deb}\n`);
  }
  rmSync(work, { recursive: true, force: true });
} catch (err) {
  process.stderr.write(`npm run package: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
