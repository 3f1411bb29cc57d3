import type { CliIO } from './io.js';

/**
 * Progress on stderr: one redrawn status line on a terminal, plain lines otherwise
 * (throttled so a log file stays readable). Never writes to stdout.
 */
export class Progress {
  readonly #io: CliIO;
  readonly #enabled: boolean;
  readonly #tty: boolean;
  #lastDraw = 0;
  #lastPlain = 0;
  #status = '';
  readonly #started = Date.now();

  constructor(io: CliIO, opts: { quiet: boolean }) {
    this.#io = io;
    this.#enabled = !opts.quiet;
    this.#tty = io.isTTY;
  }

  /** A line worth keeping (an image resolved, a warning). */
  line(text: string): void {
    if (!this.#enabled) return;
    if (this.#tty && this.#status) this.#io.stderr.write('\r\x1b[2K');
    this.#io.stderr.write(`${text}\n`);
    if (this.#tty && this.#status) this.#io.stderr.write(this.#status);
  }

  /** A transient status: redrawn on a TTY, printed every few seconds otherwise. */
  status(text: string, force = false): void {
    if (!this.#enabled) return;
    const now = Date.now();
    if (this.#tty) {
      if (!force && now - this.#lastDraw < 100) return;
      this.#lastDraw = now;
      this.#status = text;
      this.#io.stderr.write(`\r\x1b[2K${text}`);
    } else if (force || now - this.#lastPlain >= 5000) {
      this.#lastPlain = now;
      this.#io.stderr.write(`${text}\n`);
    }
  }

  done(): void {
    if (this.#enabled && this.#tty && this.#status) this.#io.stderr.write('\r\x1b[2K');
    this.#status = '';
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.#started) / 1000;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export function formatRate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-';
}
