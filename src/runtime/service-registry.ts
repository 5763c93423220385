// Foundation 1.x's ServiceRegistry, idiomatically: services registered by (namespace, name) to a
// pid, looked up with a liveness check, and removed automatically when their actor exits. Local to
// this node; cluster-wide registration comes with the distributed registry.
import { FoundationError } from '../errors.js';
import type { Pid, PidLike } from './pid.js';
import type { ActorSystem } from './system.js';

export interface ServiceInfo {
  namespace: string;
  name: string;
  pid: Pid;
  /** Whether the actor is alive right now. */
  healthy: boolean;
  /** When it was registered (epoch ms). */
  registeredAt: number;
}

export class ServiceRegistry {
  private readonly byNs = new Map<string, Map<string, { pid: Pid; at: number }>>();
  /** Actor id → the (namespace, name) pairs it holds, so an exit costs its own entries only. */
  private readonly byActor = new Map<number, Array<[string, string]>>();

  constructor(private readonly system: ActorSystem) {
    system.onExit((pid) => {
      const held = this.byActor.get(pid.id);
      if (!held) return;
      this.byActor.delete(pid.id);
      for (const [ns, name] of held) {
        const names = this.byNs.get(ns);
        if (names?.get(name)?.pid.id === pid.id) names.delete(name);
        if (names?.size === 0) this.byNs.delete(ns);
      }
    });
  }

  /** Registers `pid` as `name` in `namespace`. FND_ERR_NAME_TAKEN if a live actor holds it. */
  register(namespace: string, name: string, pid: PidLike): void {
    if (!this.system.isAlive(pid)) {
      throw new FoundationError(
        'FND_ERR_NOPROC',
        `<${pid.node}.${pid.id}> is not a live local actor`,
        { pid },
      );
    }
    let names = this.byNs.get(namespace);
    if (!names) {
      names = new Map();
      this.byNs.set(namespace, names);
    }
    const held = names.get(name);
    if (held && this.system.isAlive(held.pid) && held.pid.id !== pid.id) {
      throw new FoundationError(
        'FND_ERR_NAME_TAKEN',
        `service ${namespace}/${name} is registered to ${held.pid}`,
        {
          namespace,
          name,
        },
      );
    }
    names.set(name, { pid: pid as Pid, at: Date.now() });
    const held2 = this.byActor.get(pid.id) ?? [];
    held2.push([namespace, name]);
    this.byActor.set(pid.id, held2);
  }

  /** The pid of a live service, or undefined. */
  lookup(namespace: string, name: string): Pid | undefined {
    const entry = this.byNs.get(namespace)?.get(name);
    return entry && this.system.isAlive(entry.pid) ? entry.pid : undefined;
  }

  unregister(namespace: string, name: string): boolean {
    const names = this.byNs.get(namespace);
    const had = names?.delete(name) ?? false;
    if (names?.size === 0) this.byNs.delete(namespace);
    return had;
  }

  /** Every service in `namespace`, with health. */
  listServices(namespace: string): ServiceInfo[] {
    return [...(this.byNs.get(namespace) ?? new Map<string, { pid: Pid; at: number }>())].map(
      ([name, e]) => ({
        namespace,
        name,
        pid: e.pid,
        healthy: this.system.isAlive(e.pid),
        registeredAt: e.at,
      }),
    );
  }

  namespaces(): string[] {
    return [...this.byNs.keys()];
  }
}
