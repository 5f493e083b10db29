/** Options of `initTracking`, the seed's names and defaults. */
export interface TrackingOptions {
  /** Collector API base, e.g. "https://collector.example/api". Default: "/api" (npm) or the script's origin + "/api". */
  apiUrl?: string;
  /** Public write key. */
  apiKey?: string;
  userId?: string;
  /** Fixed session id; by default sessions rotate after 30 minutes of inactivity. */
  sessionId?: string;
  debug?: boolean;
  /** Page views, clicks, scroll milestones, form submits, page leaves, SPA routes. Default true. */
  autoTrack?: boolean;
  /** Core Web Vitals (LCP, INP, CLS, FCP, TTFB): one `web_vitals` event per page view, sent
   * as it ends. Default true; off with `autoTrack: false` too. */
  webVitals?: boolean;
  /** Send when this many events are queued. Default 20. */
  batchSize?: number;
  /** Send queued events every this many ms. Default 10000. */
  flushInterval?: number;
  /** Track nothing when the browser sends Do Not Track. Default false. */
  respectDoNotTrack?: boolean;
  /** Query parameter names redacted from recorded URLs in addition to the default list
   * (token, password, email, …); `false` turns the SDK's redaction off (the collector's
   * `[privacy]` still applies). */
  redact?: string[] | false;
}

export interface Tracking {
  /** Resolves once the wasm tracker runs (or tracking turned itself off). */
  readonly ready: Promise<Tracking>;
  trackEvent(type: string, data?: Record<string, unknown>): void;
  trackPageView(data?: Record<string, unknown>): void;
  setUserId(id: string | null): void;
  getSessionId(): string | null;
  /** Sends queued events now; resolves to how many the collector stored. */
  forceFlush(): Promise<number>;
  getQueueLength(): number;
  /** Stop tracking in this browser (remembered). */
  optOut(): void;
  optIn(): void;
}

export function initTracking(options?: TrackingOptions): Tracking;
export function getTracking(): Tracking | null;
