/** Reports the steps of a long build: one line per step, redrawn in place on a terminal. */
export interface Progress {
  step(title: string): void;
  done(summary: string): void;
}

export function terminalProgress(
  totalSteps: number,
  out: NodeJS.WriteStream = process.stderr,
): Progress {
  let current = 0;
  let started = performance.now();
  const interactive = out.isTTY === true;
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  return {
    step(title) {
      current++;
      const bar = '#'.repeat(current).padEnd(totalSteps, '.');
      const line = `[${bar}] ${current}/${totalSteps} ${title}`;
      if (interactive) out.write(`\r\x1b[2K${line}`);
      else out.write(`${line}\n`);
      if (current === 1) started = performance.now();
    },
    done(summary) {
      const line = `${summary} (${elapsed()})`;
      out.write(interactive ? `\r\x1b[2K${line}\n` : `${line}\n`);
    },
  };
}

export function silentProgress(): Progress {
  return { step: () => undefined, done: () => undefined };
}
