/** A ServiceNotifier that records what it was told, in order ("READY=1 STATUS=..."), and lets a test wait for a message. */
import type { ServiceNotifier } from '../../lib/sd-notify.js';

export class FakeNotifier implements ServiceNotifier {
  readonly messages: string[] = [];
  private waiters: Array<{ accepts: (message: string, index: number) => boolean; resolve: (message: string) => void }> = [];

  private record(message: string): Promise<void> {
    this.messages.push(message);
    const index = this.messages.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (!w.accepts(message, index)) return true;
      w.resolve(message);
      return false;
    });
    return Promise.resolve();
  }

  ready = (status: string) => this.record(`READY=1 STATUS=${status}`);
  reloading = (status: string) => this.record(`RELOADING=1 STATUS=${status}`);
  stopping = (status: string) => this.record(`STOPPING=1 STATUS=${status}`);
  status = (text: string) => this.record(`STATUS=${text}`);

  /** Resolves with the first message at or after index `from` (already sent or still to come) that matches. */
  next(match: RegExp, from = 0): Promise<string> {
    const seen = this.messages.slice(from).find((m) => match.test(m));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ accepts: (m, i) => i >= from && match.test(m), resolve }));
  }
}
