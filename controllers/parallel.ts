/**
 * Runs `fn` over `items` with at most `workers` in flight (upstream's
 * workqueue.ParallelizeUntil): node updates mostly wait on the API, so a few
 * run side by side.
 */
export async function parallelize<T>(
  items: readonly T[],
  workers: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < Math.min(workers, items.length); i++) running.push(worker());
  await Promise.all(running);
}
