// The help text of the `foundation` command, shared by `foundation help` and `<command> --help`.
export const USAGE = `Usage: foundation <command> [options]

Commands:
  start            Run a node in the foreground and print membership changes.
  demo             Start a few nodes on this machine, kill one, watch the others notice.
  help             Show this text.
  version          Print the version.

foundation start [options]
  --name <name>          Unique node name (default: <hostname>-<pid>)
  --cluster <name>       Cluster name; nodes of other clusters are refused (default: default)
  --host <addr>          Address to listen on (default: 127.0.0.1)
  --port <n>             TCP port, 0 = any free port (default: 0)
  --secret <s>           Cluster secret, >= 16 characters; required off loopback.
                         Prefer the FOUNDATION_SECRET environment variable (argv is visible to ps).
  --discovery <s>        auto | static | local | hosts-file | gossip | mdns | dns | dns-srv | kubernetes
                         (default: auto, see docs/discovery.md)
  --discovery-options <json>  The strategy's options, e.g. '{"query":"shop.prod.svc.cluster.local"}'
  --advertise-host <a>   Address other nodes dial, when it differs from --host (e.g. host 0.0.0.0)
  --hosts <h:p,h:p>      Seeds for static discovery (implies --discovery static)
  --preset <p>           Failure-detector timing: local | lan | wan (default: local on loopback, else lan)
  --insecure             Allow a non-loopback address without a secret
  --log-level <level>    fatal | error | warn | info | debug | trace | silent (default: warn, to stderr)
  --json                 One JSON object per line instead of text
  --stop-on-stdin-close  Stop gracefully when stdin closes (lets a parent process own the node)

foundation demo [--nodes N]
  --nodes <n>            How many nodes to start, 2 to 32 (default: 3)

Exit codes: 0 ok, 1 failure, 2 bad command line or option.
Examples:
  foundation start                          # run this in two terminals: the nodes find each other
  foundation start --name a --port 4001 --discovery static --hosts 127.0.0.1:4002
  FOUNDATION_SECRET=... foundation start --host 0.0.0.0 --preset lan
`;
