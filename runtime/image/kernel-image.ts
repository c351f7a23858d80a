/**
 * Gets the uncompressed kernel ELF out of a bzImage so QEMU can boot it
 * through its PVH entry point: that skips the bzImage's own decompressor,
 * which under TCG emulation takes about a second of every boot. Debian's
 * cloud kernel is LZ4-compressed (legacy frame format); Node has no LZ4, and
 * the block format is small enough to decode here.
 */

const LZ4_LEGACY_MAGIC = Buffer.from([0x02, 0x21, 0x4c, 0x18]);
const LZ4_LEGACY_BLOCK_BYTES = 8 * 1024 * 1024;

/** Decodes one LZ4 block into `out`, returning the number of bytes written. */
export function decodeLz4Block(src: Uint8Array, out: Uint8Array): number {
  let ip = 0;
  let op = 0;
  const readLength = (base: number): number => {
    let length = base;
    if (base === 15) {
      let b: number;
      do {
        b = src[ip++] ?? 0;
        length += b;
      } while (b === 255);
    }
    return length;
  };
  while (ip < src.length) {
    const token = src[ip++] ?? 0;
    const literals = readLength(token >> 4);
    if (ip + literals > src.length || op + literals > out.length) {
      throw new Error('lz4: literal run overflows the block');
    }
    out.set(src.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip >= src.length) break;
    const offset = (src[ip] ?? 0) | ((src[ip + 1] ?? 0) << 8);
    ip += 2;
    const matchLength = readLength(token & 15) + 4;
    if (offset === 0 || offset > op || op + matchLength > out.length) {
      throw new Error('lz4: match outside the decoded data');
    }
    let from = op - offset;
    if (offset >= matchLength) {
      out.copyWithin(op, from, from + matchLength);
      op += matchLength;
    } else {
      for (let i = 0; i < matchLength; i++) out[op++] = out[from++] ?? 0;
    }
  }
  return op;
}

/** Decodes an LZ4 legacy stream starting at `start` (the kernel appends its size after it). */
export function decodeLz4Legacy(data: Buffer, start: number): Buffer {
  let ip = start + LZ4_LEGACY_MAGIC.length;
  const parts: Buffer[] = [];
  const block = Buffer.allocUnsafe(LZ4_LEGACY_BLOCK_BYTES);
  while (ip + 4 <= data.length) {
    const size = data.readUInt32LE(ip);
    if (size === LZ4_LEGACY_MAGIC.readUInt32LE(0)) {
      ip += 4;
      continue;
    }
    if (size === 0 || ip + 4 + size > data.length) break;
    const written = decodeLz4Block(data.subarray(ip + 4, ip + 4 + size), block);
    parts.push(Buffer.from(block.subarray(0, written)));
    ip += 4 + size;
  }
  return Buffer.concat(parts);
}

/** True when the ELF carries a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18). */
export function hasPvhNote(elf: Buffer): boolean {
  const xen = Buffer.from('Xen\0');
  for (let at = elf.indexOf(xen); at >= 12; at = elf.indexOf(xen, at + 1)) {
    if (elf.readUInt32LE(at - 12) === 4 && elf.readUInt32LE(at - 4) === 18) return true;
  }
  return false;
}

/** The kernel ELF with a PVH entry, or undefined when the bzImage is not LZ4 or has no PVH. */
export function extractPvhKernel(bzImage: Buffer): Buffer | undefined {
  const at = bzImage.indexOf(LZ4_LEGACY_MAGIC);
  if (at < 0) return undefined;
  let elf: Buffer;
  try {
    elf = decodeLz4Legacy(bzImage, at);
  } catch {
    return undefined;
  }
  const isElf = elf.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  return isElf && hasPvhNote(elf) ? elf : undefined;
}
