import type { ExecutorEvents } from '../executor/events.js';
import type { ValidatedGraph } from '../executor/graph.js';

/**
 * Live progress for terminal runs: current node, its step bar and an ETA from the step rate. On a TTY the
 * line is redrawn in place; otherwise (CI logs, pipes) one line per node and per 25% of steps.
 */
export class ProgressPrinter {
  private node: string | null = null;
  private label = '';
  private stepStart = 0;
  private lastQuarter = -1;
  private readonly tty: boolean;
  private readonly started = performance.now();

  constructor(
    private readonly graph: ValidatedGraph,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  attach(events: ExecutorEvents): () => void {
    const offs = [
      events.on('execution_cached', (d) => {
        if (d.nodes.length) this.line(`cached: ${d.nodes.length} node(s) reused from the previous run`);
      }),
      events.on('executing', (d) => this.onExecuting(d.node)),
      events.on('progress', (d) => this.onProgress(d.value, d.max, d.metrics)),
      events.on('execution_error', (d) => this.line(`error in node ${d.node_id} (${d.node_type}): ${d.exception_message}`)),
      events.on('execution_interrupted', (d) => this.line(`interrupted in node ${d.node_id} (${d.node_type})`)),
    ];
    return () => offs.forEach((o) => o());
  }

  private describe(id: string): string {
    const node = this.graph.prompt[id];
    const title = node?._meta?.title;
    return `#${id} ${node?.class_type ?? '?'}${title && title !== node?.class_type ? ` "${title}"` : ''}`;
  }

  private onExecuting(node: string | null): void {
    if (this.tty && this.node) this.out.write('\n');
    this.node = node;
    if (node === null) {
      this.line(`done in ${((performance.now() - this.started) / 1000).toFixed(1)}s`);
      return;
    }
    this.label = this.describe(node);
    this.stepStart = performance.now();
    this.lastQuarter = -1;
    if (this.tty) this.out.write(`\r\x1b[2K${this.label}`);
    else this.line(this.label);
  }

  private onProgress(value: number, max: number, metrics?: Record<string, number>): void {
    const elapsed = (performance.now() - this.stepStart) / 1000;
    const eta = value > 0 ? (elapsed / value) * (max - value) : 0;
    const width = 24;
    const filled = Math.round((value / Math.max(1, max)) * width);
    const extra = metrics ? `  ${Object.entries(metrics).map(([k, v]) => `${k} ${formatMetric(v)}`).join('  ')}` : '';
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${value}/${max}  ${elapsed.toFixed(1)}s, ETA ${eta.toFixed(1)}s${extra}`;
    if (this.tty) this.out.write(`\r\x1b[2K${this.label} ${bar}`);
    else {
      const q = Math.floor((4 * value) / Math.max(1, max));
      if (q !== this.lastQuarter) {
        this.lastQuarter = q;
        this.line(`  ${bar}`);
      }
    }
  }

  private line(s: string): void {
    this.out.write(`${s}\n`);
  }
}

function formatMetric(v: number): string {
  return Math.abs(v) >= 0.01 && Math.abs(v) < 1e4 ? v.toFixed(v < 10 ? 4 : 1) : v.toExponential(2);
}
