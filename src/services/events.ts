// Service events on the pub/sub layer: `emit` reaches one instance of each listening service
// (a pub/sub queue group named after the service, so balanced across its nodes), `broadcast`
// reaches every instance. Event names are dot-separated; listeners may use NATS wildcards. Each
// event carries the emitter's context (traceparent + baggage) to its handlers.
import type { PubSub, Subscription } from '../dist/pubsub.js';
import type { Logger } from '../util/log.js';
import { endSpan, outgoing, runIncoming } from './context.js';
import { decodeEvent, type ServiceLimits } from './wire.js';

/** What an event handler gets besides the payload. */
export interface EventInfo {
  /** The concrete event name emitted. */
  event: string;
  /** The listening service. */
  service: string;
  /** 'emit' (one instance per service) or 'broadcast' (every instance). */
  mode: 'emit' | 'broadcast';
}

/** Handles one event. Errors (thrown or rejected) are logged; the emitter never sees them. */
export type EventHandler = (payload: unknown, info: EventInfo) => unknown;

const BALANCED = '$svc.e.';
const BROADCAST = '$svc.b.';

export class ServiceEvents {
  constructor(
    private readonly pubsub: PubSub,
    private readonly limits: ServiceLimits,
    private readonly log: Logger,
  ) {}

  /** Subscribes `service`'s handler for `pattern`; returns the subscriptions to end on stop. */
  listen(service: string, pattern: string, handler: EventHandler): Subscription[] {
    const run = (mode: 'emit' | 'broadcast', prefix: string) => (msg: unknown, topic: string) => {
      const d = decodeEvent(msg, this.limits);
      if (!d.ok) {
        this.log.warn({ topic, reason: d.reason }, 'event refused');
        return;
      }
      const event = topic.slice(prefix.length);
      const info: EventInfo = { event, service, mode };
      let span: ReturnType<typeof runIncoming>['span'];
      try {
        const r = runIncoming(d.value.ctx, undefined, 'event', event, service, () =>
          handler(d.value.payload, info),
        );
        span = r.span;
        if (r.result instanceof Promise) {
          r.result.then(
            () => endSpan(span),
            (err) => {
              endSpan(span, err);
              this.log.error(
                { event, service, err: (err as Error)?.message },
                'event handler failed',
              );
            },
          );
          return;
        }
        endSpan(span);
      } catch (err) {
        endSpan(span, err);
        this.log.error({ event, service, err: (err as Error)?.message }, 'event handler threw');
      }
    };
    const balanced = this.pubsub.subscribe(BALANCED + pattern, run('emit', BALANCED), {
      queue: service,
    });
    try {
      return [balanced, this.pubsub.subscribe(BROADCAST + pattern, run('broadcast', BROADCAST))];
    } catch (err) {
      // Both or neither: the caller keeps no subscription when this throws (FND_ERR_DIST_LIMIT).
      balanced.unsubscribe();
      throw err;
    }
  }

  /** One instance of every service listening to `event` gets it (at most once). */
  emit(event: string, payload: unknown): void {
    this.publish(BALANCED, event, payload);
  }

  /** Every instance of every service listening to `event` gets it (at most once). */
  broadcast(event: string, payload: unknown): void {
    this.publish(BROADCAST, event, payload);
  }

  private publish(prefix: string, event: string, payload: unknown): void {
    const out = outgoing('event', event, '');
    try {
      // The context travels in the event itself (with the producer span), not twice.
      this.pubsub.publish(prefix + event, out.wire ? [payload, out.wire] : [payload], {
        context: false,
      });
      endSpan(out.span);
    } catch (err) {
      endSpan(out.span, err);
      throw err;
    }
  }
}
