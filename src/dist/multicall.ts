// GenServer.multi_call and abcast (`node.multiCall`, `node.abcast`): one request (or cast) to the
// actor registered under a local name on every node this node can reach, this one included.
import type { FoundationError } from '../errors.js';
import type { DistContext } from './context.js';

export interface MultiCallOptions {
  /** Milliseconds to wait for each node's reply. Default: the node's requestTimeoutMs. */
  timeout?: number;
  /** Only these nodes (default: this node and every reachable member). */
  nodes?: string[];
}

export interface MultiCallResult<T> {
  /** node → its actor's reply. */
  replies: Map<string, T>;
  /** node → why there is no reply (FND_ERR_NOPROC, FND_ERR_CALL_TIMEOUT, FND_ERR_NODE_DOWN, ...). */
  failed: Map<string, FoundationError>;
}

export function targets(ctx: DistContext, nodes?: string[]): string[] {
  return nodes ?? [ctx.self, ...ctx.members.peers()].sort();
}

/** Calls the actor registered as `name` on every node in parallel; never rejects. */
export async function multiCall<T>(
  ctx: DistContext,
  name: string,
  msg: unknown,
  opts: MultiCallOptions = {},
): Promise<MultiCallResult<T>> {
  const nodes = targets(ctx, opts.nodes);
  const timeout = opts.timeout ?? ctx.requestTimeoutMs;
  const settled = await Promise.allSettled(
    nodes.map((node) => ctx.system.call({ name, node }, msg, { timeout }) as Promise<T>),
  );
  const result: MultiCallResult<T> = { replies: new Map(), failed: new Map() };
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') result.replies.set(nodes[i]!, r.value);
    else result.failed.set(nodes[i]!, r.reason as FoundationError);
  });
  return result;
}

/** Casts `msg` to the actor registered as `name` on every node (at most once, no reply). */
export function abcast(ctx: DistContext, name: string, msg: unknown, nodes?: string[]): void {
  for (const node of targets(ctx, nodes)) ctx.system.cast({ name, node }, msg);
}
