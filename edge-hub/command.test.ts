import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerHubCommands } from './command.ts';
import { hubOptionsSchema } from './config.ts';

describe('edgebox hub flags', () => {
  it('every option the config takes is a flag of `edgebox hub`', () => {
    const program = new Command();
    registerHubCommands(program);
    const hub = program.commands.find((c) => c.name() === 'hub');
    const flags = new Set(hub?.options.map((o) => o.attributeName()));
    const missing = Object.keys(hubOptionsSchema.shape).filter((key) => !flags.has(key));
    expect(missing).toEqual([]);
  });
});
