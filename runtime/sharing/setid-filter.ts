/**
 * A seccomp filter (classic BPF, as `bwrap --seccomp FD` loads it) under
 * which a process cannot give any file a setuid or setgid bit: every system
 * call that sets a mode is refused with EPERM when the mode carries S_ISUID or
 * S_ISGID. virtiofsd runs under it, so a guest's `chmod 4755` fails in the
 * guest and no such file lands on the host. The C virtiofsd (Debian 12's) has
 * no option to drop these bits, and seccomp sees every path it could take:
 *
 * - chmod, fchmod, fchmodat, fchmodat2: the mode argument (a directory's
 *   setgid bit is refused too; the filter cannot tell files from directories);
 * - open, openat with O_CREAT or O_TMPFILE, creat: the mode of the new file;
 * - mknod, mknodat: the mode of the new node (device nodes are refused anyway,
 *   virtiofsd runs without CAP_MKNOD);
 * - openat2 and io_uring_setup are refused with ENOSYS, since their
 *   arguments live in memory a filter cannot read (callers fall back to openat).
 *
 * mkdir needs no rule: Linux ignores S_ISUID and S_ISGID in mkdir's mode.
 * Another architecture's or ABI's system call numbers (x32 on x86-64) would
 * bypass the table, so they kill the process.
 */

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
/** The same on x86-64 and the generic table (arm64). */
const O_CREAT = 0o100;
const O_TMPFILE_FLAG = 0o20000000;
const EPERM = 1;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;

/** What the filter does with one system call. */
type Rule =
  | { kind: 'mode'; modeArg: number }
  | { kind: 'create'; flagsArg: number; modeArg: number }
  | { kind: 'refuse'; errno: number };

const RULES: Record<string, Rule> = {
  chmod: { kind: 'mode', modeArg: 1 },
  fchmod: { kind: 'mode', modeArg: 1 },
  fchmodat: { kind: 'mode', modeArg: 2 },
  fchmodat2: { kind: 'mode', modeArg: 2 },
  creat: { kind: 'mode', modeArg: 1 },
  mknod: { kind: 'mode', modeArg: 1 },
  mknodat: { kind: 'mode', modeArg: 2 },
  open: { kind: 'create', flagsArg: 1, modeArg: 2 },
  openat: { kind: 'create', flagsArg: 2, modeArg: 3 },
  openat2: { kind: 'refuse', errno: ENOSYS },
  io_uring_setup: { kind: 'refuse', errno: ENOSYS },
};

interface SyscallTable {
  /** AUDIT_ARCH_* of seccomp_data.arch. */
  auditArch: number;
  /** x86-64 also accepts x32 calls: numbers with this bit set. */
  foreignAbiBit?: number;
  numbers: Partial<Record<keyof typeof RULES, number>>;
}

/** Numbers from the kernel's syscall tables (arch/x86/entry/syscalls, include/uapi/asm-generic/unistd.h). */
const TABLES: Partial<Record<NodeJS.Architecture, SyscallTable>> = {
  x64: {
    auditArch: 0xc000003e,
    foreignAbiBit: X32_SYSCALL_BIT,
    numbers: {
      open: 2,
      creat: 85,
      chmod: 90,
      fchmod: 91,
      mknod: 133,
      openat: 257,
      mknodat: 259,
      fchmodat: 268,
      io_uring_setup: 425,
      openat2: 437,
      fchmodat2: 452,
    },
  },
  arm64: {
    auditArch: 0xc00000b7,
    numbers: {
      mknodat: 33,
      fchmod: 52,
      fchmodat: 53,
      openat: 56,
      io_uring_setup: 425,
      openat2: 437,
      fchmodat2: 452,
    },
  },
};

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;
// Offsets in struct seccomp_data; an argument's mode or flags are its low 32 bits (little-endian).
const NR_OFFSET = 0;
const ARCH_OFFSET = 4;
const argOffset = (arg: number): number => 16 + 8 * arg;

interface Instruction {
  code: number;
  k: number;
  /** Labels jumped to when the test holds / fails (conditional jumps only; none: the next instruction). */
  whenTrue?: string;
  whenFalse?: string;
  /** This instruction's own label. */
  label?: string;
}

/** The filter for the running architecture, as bytes of `struct sock_filter[]`. */
export function setidFilterProgram(arch: NodeJS.Architecture = process.arch): Buffer {
  const table = TABLES[arch];
  if (!table) {
    throw new Error(
      `no setuid/setgid seccomp filter for architecture ${arch} (known: ${Object.keys(TABLES).join(', ')})`,
    );
  }
  const program: Instruction[] = [
    { code: LD_W_ABS, k: ARCH_OFFSET },
    { code: JEQ_K, k: table.auditArch, whenTrue: 'nr', whenFalse: 'kill' },
    { code: LD_W_ABS, k: NR_OFFSET, label: 'nr' },
  ];
  if (table.foreignAbiBit !== undefined) {
    program.push({ code: JGE_K, k: table.foreignAbiBit, whenTrue: 'kill' });
  }
  const blocks: Instruction[] = [];
  for (const [name, number] of Object.entries(table.numbers)) {
    const rule = RULES[name];
    if (number === undefined || !rule) continue;
    program.push({ code: JEQ_K, k: number, whenTrue: name });
    blocks.push(...ruleBlock(name, rule));
  }
  // Jumps go forward only: blocks end at the shared returns below them.
  program.push({ code: RET_K, k: RET_ALLOW });
  program.push(...blocks);
  program.push({ code: RET_K, k: RET_ALLOW, label: 'allow' });
  program.push({ code: RET_K, k: RET_ERRNO | EPERM, label: 'eperm' });
  program.push({ code: RET_K, k: RET_KILL_PROCESS, label: 'kill' });
  return assemble(program);
}

function ruleBlock(name: string, rule: Rule): Instruction[] {
  const checkMode = (modeArg: number, label?: string): Instruction[] => [
    { code: LD_W_ABS, k: argOffset(modeArg), label },
    { code: JSET_K, k: S_ISUID | S_ISGID, whenTrue: 'eperm', whenFalse: 'allow' },
  ];
  switch (rule.kind) {
    case 'mode':
      return checkMode(rule.modeArg, name);
    case 'create':
      return [
        { code: LD_W_ABS, k: argOffset(rule.flagsArg), label: name },
        {
          code: JSET_K,
          k: O_CREAT | O_TMPFILE_FLAG,
          whenTrue: `${name}-mode`,
          whenFalse: 'allow',
        },
        ...checkMode(rule.modeArg, `${name}-mode`),
      ];
    case 'refuse':
      return [{ code: RET_K, k: RET_ERRNO | rule.errno, label: name }];
  }
}

/** Resolves labels to forward jump offsets and encodes each instruction as 8 bytes (host order: both tables are little-endian). */
function assemble(program: readonly Instruction[]): Buffer {
  const at = new Map<string, number>();
  program.forEach((insn, index) => insn.label && at.set(insn.label, index));
  const offset = (from: number, label: string | undefined): number => {
    if (label === undefined) return 0;
    const target = at.get(label);
    const jump = target === undefined ? -1 : target - from - 1;
    if (jump < 0 || jump > 255) throw new Error(`seccomp filter: bad jump to ${label}`);
    return jump;
  };
  const out = Buffer.alloc(program.length * 8);
  program.forEach((insn, index) => {
    out.writeUInt16LE(insn.code, index * 8);
    out.writeUInt8(offset(index, insn.whenTrue), index * 8 + 2);
    out.writeUInt8(offset(index, insn.whenFalse), index * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, index * 8 + 4);
  });
  return out;
}
