// What `node.consensus` delegates to: one interface, two implementations — the built-in Raft group
// (src/coord/raft-backend.ts) and an external etcd v3 cluster (src/coord/etcd.ts). The public API
// (src/coord/consensus.ts) is the same whichever the options choose.
import type { KvEvent } from './machine.js';

export interface Revisioned<T = unknown> {
  value: T;
  revision: number;
}

export interface LockHandle {
  /** Fencing token: larger than every token granted for this lock before (pass it to the resource). */
  token: number;
  /** Lease end, ms since the epoch (Raft: the leader's clock; etcd: this node's estimate). */
  expiresAt: number;
  release(): Promise<boolean>;
}

export interface LeaderHandle {
  /** Called with the fencing token each time this node becomes the group's leader. */
  onElected(fn: (token: number) => void): void;
  /** Called when this node stops being the leader (lease lost or not renewed in time, or stopped). */
  onDeposed(fn: () => void): void;
  isLeader(): boolean;
  /** Stops campaigning and releases the leadership. */
  stop(): Promise<void>;
}

export interface ConsensusStatus {
  /** Which backend serves this node's consensus API (`raft` until started). */
  backend: 'raft' | 'etcd';
  started: boolean;
  /** Raft: this node is a voter of the group (it holds the state; watch works). etcd: false. */
  member: boolean;
  /** Raft: the group's voters. etcd: the endpoints. */
  members: string[];
  role: string | undefined;
  term: number | undefined;
  leader: string | null | undefined;
  /** Raft: this member's commit index. etcd: the latest store revision this node has seen. */
  commit: number | undefined;
}

export interface ConsensusBackend {
  readonly kind: 'raft' | 'etcd';
  get<T>(key: string): Promise<Revisioned<T> | undefined>;
  put(key: string, value: unknown): Promise<number>;
  delete(key: string): Promise<boolean>;
  cas(key: string, revision: number, value: unknown): Promise<{ ok: boolean; revision: number }>;
  watch(prefix: string, fn: (e: KvEvent) => void): () => void;
  lock(name: string, opts: { ttl: number; timeout?: number }): Promise<LockHandle>;
  leader(group: string, opts: { ttl?: number }): LeaderHandle;
  barrier(name: string, n: number, opts: { timeout?: number }): Promise<void>;
  status(): ConsensusStatus;
  /** The node is stopping: leader handles report onDeposed, later operations fail. */
  stop(): Promise<void>;
}
