// Every diagnostics_channel name Foundation publishes on, in one place. Publishing is guarded by
// `hasSubscribers`, so an unobserved node pays nothing; metrics and tracing subscribe to these.
import diagnostics from 'node:diagnostics_channel';

export const CHANNELS = {
  membershipChange: 'foundation:membership:change',
  transportConnect: 'foundation:transport:connect',
  transportDisconnect: 'foundation:transport:disconnect',
  transportHandshakeError: 'foundation:transport:handshake-error',
  transportFrameError: 'foundation:transport:frame-error',
  discoveryConnect: 'foundation:discovery:connect',
  discoveryDisconnect: 'foundation:discovery:disconnect',
  /** A polling strategy could not read its source this round (DNS, Kubernetes API, hosts file). */
  discoveryPollError: 'foundation:discovery:poll-error',
  /** The Reconciler dropped discovered addresses over its limits (per-call or pending cap). */
  discoveryDropped: 'foundation:discovery:dropped',
  /** A protection key's circuit breaker changed state: `{ key, state }`. */
  protectionState: 'foundation:protection:state',
  /** node.protection refused a call: `{ key, reason: 'rate-limited' | 'pool-exhausted' | 'circuit-open' }`. */
  protectionRejected: 'foundation:protection:rejected',
  /** A watched metric's sample was flagged by its EWMA + z-score detector: `{ node, metric, value, mean, stddev, z }`. */
  telemetryAnomaly: 'foundation:telemetry:anomaly',
} as const;

const channels = Object.fromEntries(
  Object.entries(CHANNELS).map(([k, name]) => [k, diagnostics.channel(name)]),
) as Record<keyof typeof CHANNELS, diagnostics.Channel>;

/** Publishes `message` on a Foundation channel; `build` runs only when someone listens. */
export function publish(channel: keyof typeof CHANNELS, build: () => object): void {
  const ch = channels[channel];
  if (ch.hasSubscribers) ch.publish(build());
}
