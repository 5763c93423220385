// A deterministic Raft core in the style of etcd/raft: no I/O, no timers, no randomness of its own.
// The host calls `tick()` on its clock, `step(msg)` for every message received and `propose` /
// `readIndex` / `proposeConf` for client work, then drains `ready()`: what to persist (before
// anything is sent), what to send, what to apply, which reads may be served. So the same code runs
// on the in-memory network under a manual clock (the Jepsen-style tests) and on real sockets.
// Implements: randomized election timeouts, pre-vote, check-quorum (leader lease), log replication
// with probe/replicate flow, single-server membership changes, read-index reads, snapshots and log
// compaction, leadership transfer (etcd's MsgTransferLeader / MsgTimeoutNow). Ongaro's thesis (2014) and etcd-io/raft are the references.

/** One log entry. `conf` entries carry the complete new voter set; `noop` opens a leader's term. */
export interface Entry {
  term: number;
  index: number;
  type: 'normal' | 'conf' | 'noop';
  data: unknown;
}

/** What must be on stable storage before any message of the same Ready is sent. */
export interface HardState {
  term: number;
  vote: string | null;
  commit: number;
}

export interface Snapshot {
  index: number;
  term: number;
  /** Voters as of `index`. */
  voters: string[];
  /** The state machine's state as of `index` (opaque to Raft). */
  data: unknown;
}

export type Message =
  | {
      t: 'vote';
      pre: boolean;
      term: number;
      from: string;
      to: string;
      lastIndex: number;
      lastTerm: number;
      /** A campaign the leader asked for (leadership transfer): voters ignore their leader lease. */
      transfer?: boolean;
    }
  | { t: 'voteResp'; pre: boolean; term: number; from: string; to: string; granted: boolean }
  | {
      t: 'app';
      term: number;
      from: string;
      to: string;
      prevIndex: number;
      prevTerm: number;
      entries: Entry[];
      commit: number;
    }
  /** `index`: last index now matching (success) or the rejected prevIndex; `hint`: follower's guess of the match. */
  | {
      t: 'appResp';
      term: number;
      from: string;
      to: string;
      index: number;
      reject: boolean;
      hint: number;
    }
  | { t: 'hb'; term: number; from: string; to: string; commit: number; ctx: number }
  | { t: 'hbResp'; term: number; from: string; to: string; ctx: number }
  | { t: 'snap'; term: number; from: string; to: string; snapshot: Snapshot }
  /** Leadership transfer: the leader tells an up-to-date follower to campaign now. */
  | { t: 'timeoutNow'; term: number; from: string; to: string };

export type LogOp = { truncateFrom: number } | { append: Entry[] };

/** A read that may be served once the state machine has applied `index` (linearizable). */
export interface ReadState {
  id: number;
  index: number;
}

export interface Ready {
  /** Persist (fsync) before sending `messages`. Undefined: unchanged. */
  hardState?: HardState;
  /** Persist, then restore the state machine from it (before applying `committed`). */
  snapshot?: Snapshot;
  /** Log changes to persist, in order. */
  log: LogOp[];
  /** Entries to apply to the state machine, in order. */
  committed: Entry[];
  messages: Message[];
  reads: ReadState[];
}

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

export interface RaftOptions {
  id: string;
  /** Voters of a new group (ignored when persisted state has a snapshot or conf entries). */
  voters: string[];
  /** Election timeout base, ticks: randomized in [electionTicks, 2 × electionTicks). Default 10. */
  electionTicks?: number;
  /** Leader heartbeat interval, ticks. Default 1. */
  heartbeatTicks?: number;
  /** Most entries in one append message. Default 64. */
  maxEntriesPerMessage?: number;
  /** Uniform random numbers in [0, 1): the only source of randomness (seeded in tests). */
  random: () => number;
  /** What was persisted by a previous run. */
  restore?: { hardState: HardState; snapshot?: Snapshot; entries: Entry[] };
}

interface Progress {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  /** Probe: one append in flight until a response or the next heartbeat. */
  paused: boolean;
  /** Heard from since the last check-quorum round. */
  active: boolean;
  /** Highest read-index heartbeat context acknowledged. */
  readAck: number;
  /** Tick the last snapshot was sent at. */
  snapAt: number;
}

/** Raised for API misuse (never for anything a peer sends). */
export class RaftError extends Error {}

export class Raft {
  readonly id: string;
  term = 0;
  vote: string | null = null;
  leader: string | null = null;
  role: Role = 'follower';
  commit = 0;
  applied = 0;
  voters: string[];

  // The log: entries after the snapshot; entries[i].index === snapIndex + 1 + i.
  private snap: Snapshot;
  private entries: Entry[] = [];

  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly maxEntries: number;
  private readonly random: () => number;
  private elapsed = 0;
  /** Ticks since this instance started. */
  private ticks = 0;
  private heartbeatElapsed = 0;
  private timeout = 0;
  private votes = new Map<string, boolean>();
  private progress = new Map<string, Progress>();
  /** Leader: the member leadership is being handed to; proposals are refused meanwhile. */
  private transferee: string | undefined;
  private transferElapsed = 0;

  // Pending outputs.
  private msgs: Message[] = [];
  private logOps: LogOp[] = [];
  private pendingSnap: Snapshot | undefined;
  private prevHard: HardState;
  private readsOut: ReadState[] = [];

  // Read index (leader): requests waiting for a quorum of heartbeat acks with ctx ≥ their seq.
  private readSeq = 0;
  private readQueue: Array<{ id: number; index: number; seq: number }> = [];
  /** Reads asked for before this leader committed an entry of its term. */
  private readWaiting: number[] = [];

  constructor(opts: RaftOptions) {
    this.id = opts.id;
    this.electionTicks = opts.electionTicks ?? 10;
    this.heartbeatTicks = opts.heartbeatTicks ?? 1;
    this.maxEntries = opts.maxEntriesPerMessage ?? 64;
    this.random = opts.random;
    this.snap = { index: 0, term: 0, voters: [...opts.voters].sort(), data: null };
    this.voters = this.snap.voters;
    const r = opts.restore;
    if (r) {
      if (r.snapshot) this.snap = r.snapshot;
      this.entries = r.entries.filter((e) => e.index > this.snap.index);
      this.term = r.hardState.term;
      this.vote = r.hardState.vote;
      this.commit = Math.max(r.hardState.commit, this.snap.index);
      this.applied = this.snap.index;
      this.recomputeVoters();
    }
    this.prevHard = this.hardState();
    this.resetTimeout();
  }

  // ---- log ----

  lastIndex(): number {
    return this.snap.index + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.term : this.snap.term;
  }

  /** Term of the entry at `i`, or undefined when compacted away or beyond the log. */
  termAt(i: number): number | undefined {
    if (i === this.snap.index) return this.snap.term;
    if (i < this.snap.index || i > this.lastIndex()) return undefined;
    return this.entries[i - this.snap.index - 1]!.term;
  }

  entryAt(i: number): Entry | undefined {
    return i > this.snap.index ? this.entries[i - this.snap.index - 1] : undefined;
  }

  get snapshotIndex(): number {
    return this.snap.index;
  }

  private truncateAndAppend(ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    const truncated = first <= this.lastIndex();
    if (truncated) {
      this.entries.length = first - this.snap.index - 1;
      this.logOps.push({ truncateFrom: first });
    }
    this.entries.push(...ents);
    this.logOps.push({ append: ents });
    if (truncated || ents.some((e) => e.type === 'conf')) this.recomputeVoters();
  }

  /** Voters: the latest conf entry in the log, committed or not (thesis §4.1), else the snapshot's. */
  private recomputeVoters(): void {
    let v = this.snap.voters;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.type === 'conf') {
        v = (e.data as { voters: string[] }).voters;
        break;
      }
    }
    this.voters = v;
    if (this.role === 'leader') {
      for (const id of v)
        if (id !== this.id && !this.progress.has(id))
          this.progress.set(id, this.newProgress(this.lastIndex() + 1));
      for (const id of [...this.progress.keys()]) if (!v.includes(id)) this.progress.delete(id);
    }
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  private isVoter(): boolean {
    return this.voters.includes(this.id);
  }

  private upToDate(lastIndex: number, lastTerm: number): boolean {
    return (
      lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex())
    );
  }

  // ---- state ----

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  private resetTimeout(): void {
    this.elapsed = 0;
    this.heartbeatElapsed = 0;
    this.timeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
  }

  private becomeFollower(term: number, leader: string | null): void {
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.transferee = undefined;
    this.failReads();
    this.resetTimeout();
  }

  private becomePreCandidate(): void {
    this.role = 'precandidate';
    this.leader = null;
    this.votes = new Map([[this.id, true]]);
    this.resetTimeout();
    this.failReads();
  }

  private becomeCandidate(): void {
    this.role = 'candidate';
    this.term += 1;
    this.vote = this.id;
    this.leader = null;
    this.votes = new Map([[this.id, true]]);
    this.resetTimeout();
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.transferee = undefined;
    this.resetTimeout();
    this.progress = new Map();
    for (const id of this.voters)
      if (id !== this.id) this.progress.set(id, this.newProgress(this.lastIndex() + 1));
    // A no-op of the new term: commits everything before it and lets read-index start.
    this.appendLocal([{ type: 'noop', data: null }]);
    this.broadcastAppend();
  }

  private newProgress(next: number): Progress {
    return { match: 0, next, state: 'probe', paused: false, active: true, readAck: 0, snapAt: 0 };
  }

  private campaign(pre: boolean, transfer = false): void {
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    if (this.votes.size >= this.quorum()) {
      if (pre) this.campaign(false);
      else this.becomeLeader();
      return;
    }
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.send({
        t: 'vote',
        pre,
        term: pre ? this.term + 1 : this.term,
        from: this.id,
        to,
        lastIndex: this.lastIndex(),
        lastTerm: this.lastTerm(),
        ...(transfer ? { transfer: true } : {}),
      });
    }
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  // ---- clock ----

  tick(): void {
    this.ticks++;
    this.elapsed++;
    if (this.role === 'leader') {
      this.heartbeatElapsed++;
      if (this.elapsed >= this.electionTicks) {
        this.elapsed = 0;
        // Check quorum: a leader that has not heard from a majority in an election timeout
        // steps down, so a partitioned leader stops serving reads and accepting writes.
        let active = 1;
        for (const [id, p] of this.progress) {
          if (p.active && this.voters.includes(id)) active++;
          p.active = false;
        }
        if (!this.isVoter() || active < this.quorum()) {
          this.becomeFollower(this.term, null);
          return;
        }
      }
      if (this.transferee !== undefined && ++this.transferElapsed >= this.electionTicks) {
        // The target did not take over within an election timeout: keep leading (etcd aborts too).
        this.transferee = undefined;
      }
      if (this.heartbeatElapsed >= this.heartbeatTicks) {
        this.heartbeatElapsed = 0;
        this.broadcastHeartbeat();
      }
      return;
    }
    if (this.elapsed >= this.timeout && this.isVoter()) this.campaign(true);
  }

  // ---- client API ----

  /** Appends a command; returns its index and term when this node is the leader, else undefined. */
  propose(data: unknown): { index: number; term: number } | undefined {
    if (this.role !== 'leader' || this.transferee !== undefined) return undefined;
    const e = this.appendLocal([{ type: 'normal', data }]);
    this.broadcastAppend();
    return { index: e.index, term: e.term };
  }

  /**
   * Proposes a new voter set that adds or removes exactly one member. Refused (undefined) when
   * not the leader, when a conf change is still uncommitted, or when the change is not single-server.
   */
  proposeConf(voters: string[]): { index: number; term: number } | undefined {
    if (this.role !== 'leader' || this.transferee !== undefined) return undefined;
    for (let i = this.commit + 1; i <= this.lastIndex(); i++)
      if (this.entryAt(i)?.type === 'conf') return undefined;
    const next = [...new Set(voters)].sort();
    const added = next.filter((v) => !this.voters.includes(v));
    const removed = this.voters.filter((v) => !next.includes(v));
    if (added.length + removed.length !== 1 || next.length === 0) return undefined;
    const e = this.appendLocal([{ type: 'conf', data: { voters: next } }]);
    this.broadcastAppend();
    return { index: e.index, term: e.term };
  }

  /**
   * Hands leadership to voter `to` (default: the most up-to-date follower), etcd/raft style: the
   * leader refuses proposals, brings the target's log up to date, then sends it TimeoutNow; the
   * target campaigns at once (no pre-vote, and voters ignore their leader lease for it). Aborted
   * when the target has not taken over within an election timeout. Returns the target, or
   * undefined when not the leader or there is no other voter.
   */
  transferLeadership(to?: string): string | undefined {
    if (this.role !== 'leader') return undefined;
    let target = to;
    if (target === undefined) {
      let best = -1;
      for (const [id, p] of this.progress)
        if (this.voters.includes(id) && p.match > best) {
          best = p.match;
          target = id;
        }
    }
    if (target === undefined || target === this.id || !this.progress.has(target)) return undefined;
    if (!this.voters.includes(target)) return undefined;
    this.transferee = target;
    this.transferElapsed = 0;
    const p = this.progress.get(target)!;
    if (p.match === this.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppend(target);
    return target;
  }

  /** The member leadership is being handed to (leader only), if a transfer is under way. */
  get transferTarget(): string | undefined {
    return this.transferee;
  }

  private sendTimeoutNow(to: string): void {
    this.send({ t: 'timeoutNow', term: this.term, from: this.id, to });
  }

  /**
   * Asks for a linearizable read point: `id` comes back in Ready.reads with the commit index to
   * wait for once a quorum has confirmed this node is still the leader. False when not the leader.
   */
  readIndex(id: number): boolean {
    if (this.role !== 'leader') return false;
    if (this.termAt(this.commit) !== this.term) {
      this.readWaiting.push(id);
      return true;
    }
    this.queueRead(id);
    return true;
  }

  /** Reads asked for but abandoned because leadership was lost: the host fails them. */
  takeFailedReads(): number[] {
    const f = this.failed;
    this.failed = [];
    return f;
  }
  private failed: number[] = [];

  private failReads(): void {
    for (const r of this.readQueue) this.failed.push(r.id);
    this.failed.push(...this.readWaiting);
    this.readQueue = [];
    this.readWaiting = [];
  }

  private queueRead(id: number): void {
    if (this.quorum() <= 1) {
      this.readsOut.push({ id, index: this.commit });
      return;
    }
    const seq = ++this.readSeq;
    this.readQueue.push({ id, index: this.commit, seq });
    this.broadcastHeartbeat();
  }

  /**
   * Compacts the log: the state machine's state as of `index` (≤ applied) becomes the snapshot
   * and earlier entries are dropped. Returns the snapshot: the host persists it (it is not in a
   * Ready, whose snapshot is one to restore the state machine from).
   */
  compact(index: number, data: unknown): Snapshot {
    if (index > this.applied || index <= this.snap.index)
      throw new RaftError(
        `cannot compact to ${index} (applied ${this.applied}, snapshot ${this.snap.index})`,
      );
    const term = this.termAt(index)!;
    // Voters as of `index`: the last conf entry at or before it.
    let voters = this.snap.voters;
    for (let i = index; i > this.snap.index; i--) {
      const e = this.entryAt(i)!;
      if (e.type === 'conf') {
        voters = (e.data as { voters: string[] }).voters;
        break;
      }
    }
    this.entries = this.entries.slice(index - this.snap.index);
    this.snap = { index, term, voters, data };
    return this.snap;
  }

  // ---- leader: replication ----

  private appendLocal(ents: Array<Omit<Entry, 'term' | 'index'>>): Entry {
    let i = this.lastIndex();
    const full = ents.map((e) => ({ ...e, term: this.term, index: ++i }));
    this.truncateAndAppend(full);
    this.maybeCommit();
    return full[full.length - 1]!;
  }

  private broadcastAppend(): void {
    for (const id of this.progress.keys()) this.sendAppend(id);
  }

  private sendAppend(to: string): void {
    const p = this.progress.get(to);
    if (!p || p.paused || p.state === 'snapshot') return;
    const prevIndex = p.next - 1;
    const prevTerm = this.termAt(prevIndex);
    if (prevTerm === undefined) {
      // What the follower needs was compacted away: send the snapshot.
      p.state = 'snapshot';
      p.snapAt = this.ticks;
      this.send({ t: 'snap', term: this.term, from: this.id, to, snapshot: this.snap });
      return;
    }
    const last = Math.min(this.lastIndex(), prevIndex + this.maxEntries);
    const entries = this.entries.slice(prevIndex - this.snap.index, last - this.snap.index);
    if (entries.length === 0 && p.state === 'replicate' && p.match === this.lastIndex()) return;
    this.send({
      t: 'app',
      term: this.term,
      from: this.id,
      to,
      prevIndex,
      prevTerm,
      entries,
      commit: this.commit,
    });
    if (p.state === 'replicate') p.next = last + 1;
    else p.paused = true;
  }

  private broadcastHeartbeat(): void {
    for (const [to, p] of this.progress) {
      this.send({
        t: 'hb',
        term: this.term,
        from: this.id,
        to,
        commit: Math.min(p.match, this.commit),
        ctx: this.readSeq,
      });
    }
  }

  private maybeCommit(): void {
    const matches = this.voters.map((id) =>
      id === this.id ? this.lastIndex() : (this.progress.get(id)?.match ?? 0),
    );
    matches.sort((a, b) => b - a);
    const n = matches[this.quorum() - 1] ?? 0;
    // Only entries of the current term commit by counting (Raft §5.4.2).
    if (n > this.commit && this.termAt(n) === this.term) {
      this.commit = n;
      if (this.readWaiting.length > 0) {
        const w = this.readWaiting;
        this.readWaiting = [];
        for (const id of w) this.queueRead(id);
      }
      this.broadcastAppend();
      // A leader no longer in the committed configuration steps down.
      if (!this.isVoter() && this.committedConfExcludesSelf()) this.becomeFollower(this.term, null);
    }
  }

  private committedConfExcludesSelf(): boolean {
    for (let i = this.lastIndex(); i > this.snap.index; i--) {
      const e = this.entryAt(i)!;
      if (e.type === 'conf')
        return i <= this.commit && !(e.data as { voters: string[] }).voters.includes(this.id);
    }
    return !this.snap.voters.includes(this.id);
  }

  // ---- messages ----

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.t === 'vote') {
        // Leader lease (check-quorum): a node that heard from a leader within the election
        // timeout ignores campaigns, so a node rejoining from a partition cannot depose it.
        // A transfer campaign was asked for by the leader itself: it passes.
        if (!m.transfer && this.leader !== null && this.elapsed < this.electionTicks) return;
      }
      if (m.t === 'vote' && m.pre) {
        // A pre-vote never changes our term.
      } else if (m.t === 'voteResp' && m.pre && m.granted) {
        // Granted pre-votes carry the term we would campaign at.
      } else if (m.t === 'app' || m.t === 'hb' || m.t === 'snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if (m.t === 'app' || m.t === 'hb') {
        // Tell a stale leader about the newer term so it steps down.
        this.send({
          t: 'appResp',
          term: this.term,
          from: this.id,
          to: m.from,
          index: 0,
          reject: true,
          hint: 0,
        });
      } else if (m.t === 'vote' && m.pre) {
        this.send({
          t: 'voteResp',
          pre: true,
          term: this.term,
          from: this.id,
          to: m.from,
          granted: false,
        });
      }
      return;
    }

    switch (m.t) {
      case 'vote': {
        const canVote =
          this.vote === m.from ||
          (this.vote === null && this.leader === null) ||
          (m.pre && m.term > this.term);
        const granted = canVote && this.upToDate(m.lastIndex, m.lastTerm);
        if (granted && !m.pre) {
          this.vote = m.from;
          this.elapsed = 0;
        }
        // A refused pre-vote answers with our term: the candidate's term+1 would make it step up.
        const term = m.pre && !granted ? this.term : m.term;
        this.send({ t: 'voteResp', pre: m.pre, term, from: this.id, to: m.from, granted });
        return;
      }
      case 'voteResp': {
        const want = m.pre ? 'precandidate' : 'candidate';
        if (this.role !== want || !this.voters.includes(m.from)) return;
        this.votes.set(m.from, m.granted);
        let yes = 0;
        let no = 0;
        for (const v of this.votes.values()) v ? yes++ : no++;
        if (yes >= this.quorum()) {
          if (m.pre) this.campaign(false);
          else this.becomeLeader();
        } else if (no >= this.quorum()) this.becomeFollower(this.term, null);
        return;
      }
      case 'app':
        this.becomeFollowerOf(m.from);
        this.handleAppend(m);
        return;
      case 'hb':
        this.becomeFollowerOf(m.from);
        if (m.commit > this.commit) this.commit = Math.min(m.commit, this.lastIndex());
        this.send({ t: 'hbResp', term: this.term, from: this.id, to: m.from, ctx: m.ctx });
        return;
      case 'snap':
        this.becomeFollowerOf(m.from);
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // From our leader (same term): campaign now, skipping pre-vote.
        if (this.isVoter() && this.role === 'follower' && this.leader === m.from)
          this.campaign(false, true);
        return;
      case 'appResp':
        this.handleAppResp(m);
        return;
      case 'hbResp': {
        const p = this.progress.get(m.from);
        if (this.role !== 'leader' || !p) return;
        p.active = true;
        p.paused = false;
        // A snapshot unanswered for an election timeout was lost: send it again.
        if (p.state === 'snapshot' && this.ticks - p.snapAt >= this.electionTicks)
          p.state = 'probe';
        if (p.match < this.lastIndex()) this.sendAppend(m.from);
        if (m.ctx > p.readAck) {
          p.readAck = m.ctx;
          this.advanceReads();
        }
        return;
      }
    }
  }

  private becomeFollowerOf(leader: string): void {
    if (this.role !== 'follower' || this.leader !== leader) this.becomeFollower(this.term, leader);
    this.elapsed = 0;
  }

  private handleAppend(m: Extract<Message, { t: 'app' }>): void {
    const reply = (index: number, reject: boolean, hint: number) =>
      this.send({ t: 'appResp', term: this.term, from: this.id, to: m.from, index, reject, hint });
    if (m.prevIndex < this.commit) {
      reply(this.commit, false, 0);
      return;
    }
    const t = this.termAt(m.prevIndex);
    if (t === undefined || t !== m.prevTerm) {
      // Hint: the last index whose term is ≤ prevTerm, at most our last index (etcd's
      // findConflictByTerm), so the leader skips a whole divergent term per round trip.
      let hint = Math.min(m.prevIndex - 1, this.lastIndex());
      while (hint > this.commit && (this.termAt(hint) ?? 0) > m.prevTerm) hint--;
      reply(m.prevIndex, true, Math.max(hint, this.commit));
      return;
    }
    // Append what is new; truncate from the first conflicting entry.
    let i = 0;
    for (; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      const mine = this.termAt(e.index);
      if (mine === undefined || mine !== e.term) break;
    }
    if (i < m.entries.length) this.truncateAndAppend(m.entries.slice(i));
    const lastNew = m.prevIndex + m.entries.length;
    if (m.commit > this.commit) this.commit = Math.min(m.commit, lastNew);
    reply(lastNew, false, 0);
  }

  private handleSnapshot(m: Extract<Message, { t: 'snap' }>): void {
    const s = m.snapshot;
    if (s.index <= this.commit) {
      this.send({
        t: 'appResp',
        term: this.term,
        from: this.id,
        to: m.from,
        index: this.commit,
        reject: false,
        hint: 0,
      });
      return;
    }
    if (this.termAt(s.index) === s.term) {
      // Our log already has the snapshot's last entry: keep the log (we may have acknowledged
      // entries after it, which the leader counts on) and just commit up to it, as etcd does. The
      // reply claims only the snapshot's index: entries after it may not match the leader's.
      this.commit = s.index;
      this.send({
        t: 'appResp',
        term: this.term,
        from: this.id,
        to: m.from,
        index: s.index,
        reject: false,
        hint: 0,
      });
      return;
    }
    this.snap = s;
    this.entries = [];
    this.commit = s.index;
    this.applied = s.index;
    this.pendingSnap = s;
    this.logOps.push({ truncateFrom: 0 });
    this.recomputeVoters();
    this.send({
      t: 'appResp',
      term: this.term,
      from: this.id,
      to: m.from,
      index: s.index,
      reject: false,
      hint: 0,
    });
  }

  private handleAppResp(m: Extract<Message, { t: 'appResp' }>): void {
    const p = this.progress.get(m.from);
    if (this.role !== 'leader' || !p) return;
    p.active = true;
    if (m.reject) {
      if (m.index === 0) return; // a stale-term reply: handled by the term check
      // Stale rejections (of an append we have moved past) change nothing.
      if (m.index <= p.match || (p.state === 'probe' && m.index !== p.next - 1)) return;
      p.state = 'probe';
      p.paused = false;
      p.next = Math.max(p.match + 1, Math.min(m.index, m.hint + 1));
      this.sendAppend(m.from);
      return;
    }
    const wasPaused = p.paused;
    if (m.index > p.match) {
      p.match = m.index;
      p.next = Math.max(p.next, m.index + 1);
      p.state = 'replicate';
      p.paused = false;
      this.maybeCommit();
    } else if (p.state === 'snapshot' && m.index >= this.snap.index) {
      p.state = 'replicate';
    }
    if (p.state === 'probe' && wasPaused) p.paused = false;
    if (m.from === this.transferee && p.match === this.lastIndex()) this.sendTimeoutNow(m.from);
    else if (p.next <= this.lastIndex() || p.match < this.lastIndex()) this.sendAppend(m.from);
  }

  private advanceReads(): void {
    while (this.readQueue.length > 0) {
      const r = this.readQueue[0]!;
      let acks = 1;
      for (const [id, p] of this.progress)
        if (this.voters.includes(id) && p.readAck >= r.seq) acks++;
      if (acks < this.quorum()) return;
      this.readQueue.shift();
      this.readsOut.push({ id: r.id, index: r.index });
    }
  }

  // ---- output ----

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.logOps.length > 0 ||
      this.pendingSnap !== undefined ||
      this.readsOut.length > 0 ||
      this.failed.length > 0 ||
      this.commit > this.applied ||
      !sameHard(this.prevHard, this.hardState())
    );
  }

  /**
   * Everything to do now. The host persists hardState, snapshot and log, then sends messages,
   * then applies `committed` and serves `reads` (once applied ≥ their index). Taking a Ready
   * marks its entries applied.
   */
  ready(): Ready {
    const hs = this.hardState();
    const rd: Ready = {
      log: this.logOps,
      committed: [],
      messages: this.msgs,
      reads: this.readsOut,
    };
    if (!sameHard(this.prevHard, hs)) {
      rd.hardState = hs;
      this.prevHard = hs;
    }
    if (this.pendingSnap) {
      rd.snapshot = this.pendingSnap;
      this.pendingSnap = undefined;
    }
    if (this.commit > this.applied) {
      rd.committed = this.entries.slice(
        this.applied - this.snap.index,
        this.commit - this.snap.index,
      );
      this.applied = this.commit;
    }
    this.logOps = [];
    this.msgs = [];
    this.readsOut = [];
    return rd;
  }
}

const sameHard = (a: HardState, b: HardState) =>
  a.term === b.term && a.vote === b.vote && a.commit === b.commit;
