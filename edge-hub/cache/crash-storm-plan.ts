/** What the kill -9 storm writes, shared by the child (crash-storm-child.ts) and the test. */

export const STORM_PODS = { group: '', version: 'v1', resource: 'pods' } as const;
export const COUNTERS = 5;

/** The names generation `g` of the list scope holds. */
export function generationNames(g: number): string[] {
  const count = 5 + (g % 7);
  return Array.from({ length: count }, (_, i) => `p${(g * 3 + i) % 40}`);
}
