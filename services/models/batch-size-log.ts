/**
 * The sizes of the batches a model ran, for benches and tests. Bounded, because a worker runs for weeks: only the
 * latest sizes are kept, and a reader marks where it starts (`count`) and reads what came after (`since`).
 */
export class BatchSizeLog {
  private sizes: number[] = [];
  /** Batches recorded since the log began, kept or not. */
  count = 0;

  constructor(private readonly kept = 1024) {}

  record(size: number): void {
    this.sizes.push(size);
    this.count++;
    // Trimmed in halves, so recording stays O(1) on average.
    if (this.sizes.length >= this.kept * 2) this.sizes.splice(0, this.sizes.length - this.kept);
  }

  /** The sizes recorded after `mark` (an earlier `count`), as many of them as are still kept. */
  since(mark = 0): number[] {
    const dropped = this.count - this.sizes.length;
    return this.sizes.slice(Math.max(0, mark - dropped));
  }
}
