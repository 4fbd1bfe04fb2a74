/** A ServiceNotifier that records what it was told, in order ("READY=1 STATUS=..."), and lets a test wait for a message. */
import type { ServiceNotifier } from '../../lib/sd-notify.js';

export class FakeNotifier implements ServiceNotifier {
  readonly messages: string[] = [];
  private waiters: Array<{ match: RegExp; resolve: (message: string) => void }> = [];

  private record(message: string): Promise<void> {
    this.messages.push(message);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match.test(message)) return true;
      w.resolve(message);
      return false;
    });
    return Promise.resolve();
  }

  ready = (status: string) => this.record(`READY=1 STATUS=${status}`);
  reloading = (status: string) => this.record(`RELOADING=1 STATUS=${status}`);
  stopping = (status: string) => this.record(`STOPPING=1 STATUS=${status}`);
  status = (text: string) => this.record(`STATUS=${text}`);

  /** Resolves with the first message (already sent or still to come) that matches. */
  next(match: RegExp): Promise<string> {
    const seen = this.messages.find((m) => match.test(m));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}
