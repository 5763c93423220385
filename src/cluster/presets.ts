// Failure-detector timing presets, modelled on memberlist's DefaultLocalConfig / DefaultLANConfig /
// DefaultWANConfig and tightened for `local` so that a killed process on the same host is seen
// down within 2 s while a 500 ms event-loop stall is still survived.

export interface MembershipTiming {
  /** How often each node probes one member, in ms. Lower: faster detection, more traffic. */
  probeIntervalMs: number;
  /** How long to wait for a direct ack before asking others to probe, in ms. Must be < probeIntervalMs. */
  probeTimeoutMs: number;
  /** How many members are asked to probe indirectly (SWIM's k). More: fewer false positives on lossy links. */
  indirectChecks: number;
  /** Suspicion timeout once enough members confirm the suspicion, in ms. Lower: faster, more false downs. */
  suspicionMinMs: number;
  /** Suspicion timeout with no confirmation (Lifeguard's upper bound), in ms. */
  suspicionMaxMs: number;
  /**
   * Independent confirmations (suspecters beyond the first) that bring a suspicion down to
   * suspicionMinMs (memberlist's k = SuspicionMult − 2). With fewer live members than that to
   * confirm, the timeout is suspicionMinMs from the start. Count, 0 – 16.
   */
  suspicionConfirmations: number;
  /** Full state exchange with one random member every this many ms (anti-entropy). */
  syncIntervalMs: number;
  /** How often to try to reach one member that is down (heals partitions), in ms. */
  reconnectIntervalMs: number;
  /** How long down/left members stay listed before they are forgotten, in ms. */
  downRetentionMs: number;
  /** Lifeguard local-health ceiling: probe timeouts stretch up to (1 + this) times when this node is unhealthy. */
  awarenessMax: number;
  /** A timer that fires this many ms late means this node's event loop stalled; its verdict is not trusted. */
  lagToleranceMs: number;
}

export type PresetName = 'local' | 'lan' | 'wan';

export const PRESETS: Readonly<Record<PresetName, Readonly<MembershipTiming>>> = Object.freeze({
  // Same host: RTT ~0.1 ms, kernel closes a killed process's sockets at once.
  local: Object.freeze({
    probeIntervalMs: 200,
    probeTimeoutMs: 100,
    indirectChecks: 2,
    suspicionMinMs: 800,
    suspicionMaxMs: 1400,
    // Two, as five nodes had before issue 14 (memberlist's local k is 1): off loopback, where
    // `local` does not belong, one confirmation made it declare even more healthy members down.
    suspicionConfirmations: 2,
    syncIntervalMs: 2_000,
    reconnectIntervalMs: 500,
    downRetentionMs: 60_000,
    awarenessMax: 4,
    lagToleranceMs: 60,
  }),
  // One data centre / LAN: memberlist's LAN numbers.
  lan: Object.freeze({
    probeIntervalMs: 1_000,
    probeTimeoutMs: 500,
    indirectChecks: 3,
    suspicionMinMs: 4_000,
    suspicionMaxMs: 24_000,
    // memberlist's LAN k is 2; 1 because a two-node side of a partition can only ever give one
    // confirmation, and with 2 it needed ~13 s to declare the other side down (docs/membership.md).
    suspicionConfirmations: 1,
    syncIntervalMs: 30_000,
    // Re-dial down members every second: a healed partition or blackhole is re-joined within ~1 s.
    reconnectIntervalMs: 1_000,
    downRetentionMs: 3_600_000,
    awarenessMax: 8,
    lagToleranceMs: 250,
  }),
  // Across regions: memberlist's WAN numbers.
  wan: Object.freeze({
    probeIntervalMs: 5_000,
    probeTimeoutMs: 3_000,
    indirectChecks: 4,
    suspicionMinMs: 30_000,
    suspicionMaxMs: 180_000,
    suspicionConfirmations: 4,
    syncIntervalMs: 60_000,
    reconnectIntervalMs: 30_000,
    downRetentionMs: 6 * 3_600_000,
    awarenessMax: 8,
    lagToleranceMs: 1_000,
  }),
});
