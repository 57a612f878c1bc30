/** What every view gets and does. */
import type { Model } from '../dashboard-model.ts';

export interface App {
  /** A URL of the dashboard server, with the token when there is one. */
  api(path: string, params?: Record<string, string>): string;
  /** Shows an actor's replayed timeline (`worker/2`, `map/ab12`). */
  openActor(actor: string): void;
  /** The server's clock, now. */
  now(): number;
  /** True when the data comes from a stopped cluster's stored log. */
  offline(): boolean;
}

export interface View {
  readonly el: HTMLElement;
  render(m: Model): void;
}
