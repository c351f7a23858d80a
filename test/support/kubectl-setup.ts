import { ensureKubectl } from './kubectl.ts';

/** vitest globalSetup: a kubectl recent enough for the tests, once, before any runs. */
export function setup(): void {
  ensureKubectl();
}
