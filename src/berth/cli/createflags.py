"""`run`'s and `create`'s flags, as the docker CLI names them (`cli.create` builds the
container-create body from them; `cli.runflags` parses the values that need it).

Imports `cmdline`.
"""

from __future__ import annotations

from berth.cmdline import (
    Options,
    boolean,
    integer,
    optional_integer,
    optional_string,
    string,
    strings,
)


class CreateOptions(Options):
    INTERSPERSED = False
    rm = boolean("rm", help="Automatically remove the container when it exits")
    name = string("name", help="Assign a name to the container")
    env = strings("env", "e", help="Set environment variables")
    env_file = strings("env-file", help="Read in a file of environment variables")
    workdir = string("workdir", "w", help="Working directory inside the container")
    user = optional_string("user", "u", help="Username or UID (format: <name|uid>[:<group|gid>])")
    hostname = string("hostname", "h", help="Container host name")
    entrypoint = optional_string("entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    label = strings("label", "l", help="Set meta data on a container")
    network = string("network", help="Connect a container to a network")
    net = string("net", help="Connect a container to a network")
    memory = string("memory", "m", help="Memory limit")
    memory_swap = string(
        "memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"
    )
    cpus = string("cpus", help="Number of CPUs")
    cpu_shares = integer("cpu-shares", "c", help="CPU shares (relative weight)")
    cpuset_cpus = string("cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    cpuset_mems = string("cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    cpu_quota = integer("cpu-quota", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    cpu_period = integer("cpu-period", help="Limit CPU CFS (Completely Fair Scheduler) period")
    pids_limit = integer("pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    interactive = boolean("interactive", "i", help="Keep STDIN open even if not attached")
    tty = boolean("tty", "t", help="Allocate a pseudo-TTY")
    pull = string(
        "pull", default="missing", help='Pull image before running ("always", "missing", "never")'
    )
    stop_signal = string("stop-signal", help="Signal to stop the container")
    stop_timeout = optional_integer("stop-timeout", help="Timeout (in seconds) to stop a container")
    privileged = boolean("privileged", help="Give extended privileges to this container")
    cap_add = strings("cap-add", help="Add Linux capabilities")
    cap_drop = strings("cap-drop", help="Drop Linux capabilities")
    read_only = boolean("read-only", help="Mount the container's root filesystem as read only")
    tmpfs = strings("tmpfs", help="Mount a tmpfs directory")
    volume = strings("volume", "v", help="Bind mount a volume")
    ulimit = strings("ulimit", help="Ulimit options")
    shm_size = string("shm-size", help="Size of /dev/shm")
    add_host = strings("add-host", help="Add a custom host-to-IP mapping (host:ip)")
    dns = strings("dns", help="Set custom DNS servers")
    dns_search = strings("dns-search", help="Set custom DNS search domains")
    dns_option = strings("dns-option", help="Set DNS options")
    restart = string("restart", help="Restart policy to apply when a container exits")
    security_opt = strings("security-opt", help="Security Options")
    sysctl = strings("sysctl", help="Sysctl options")
    init = boolean(
        "init", help="Run an init inside the container that forwards signals and reaps processes"
    )
    platform = string("platform", help="Set platform if server is multi-platform capable")
    attach = strings("attach", "a", help="Attach to STDIN, STDOUT or STDERR")
    group_add = strings("group-add", help="Add additional groups to join")
    cidfile = string("cidfile", help="Write the container ID to the file")
    runtime = string("runtime", help="Runtime to use for this container")
    cgroup_parent = string("cgroup-parent", help="Optional parent cgroup for the container")
    cgroupns = string(
        "cgroupns",
        help="Cgroup namespace to use (host|private): 'host' runs the container in "
        "the host's cgroup namespace, 'private' in its own private cgroup "
        "namespace",
    )
    userns = string("userns", help="User namespace to use")
    log_driver = string("log-driver", help="Logging driver for the container")
    log_opt = strings("log-opt", help="Log driver options")
    publish = strings("publish", "p", help="Publish a container's port(s) to the host")
    expose = strings(
        "expose", help="Expose a port or a range of ports container ('all' to pass all GPUs)"
    )
    publish_all = boolean("publish-all", "P", help="Publish all exposed ports to random ports")
    detach_keys = string("detach-keys", help="Override the key sequence for detaching a container")
    mount = strings("mount", help="Attach a filesystem mount to the container")
    volumes_from = strings("volumes-from", help="Mount volumes from the specified container(s)")
    network_alias = strings("network-alias", help="Add network-scoped alias for the container")
    ip = string("ip", help="IPv4 address (e.g., 172.30.100.104)")
    ip6 = string("ip6", help="IPv6 address (e.g., 2001:db8::33)")
    link_local_ip = strings("link-local-ip", help="Container IPv4/IPv6 link-local addresses")
    mac_address = string("mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    device = strings("device", help="Add a host device to the container")
    health_cmd = string("health-cmd", help="Command to run to check health")
    health_interval = string("health-interval", help="Time between running the check (ms|s|m|h)")
    health_timeout = string(
        "health-timeout", help="Maximum time to allow one check to run (ms|s|m|h)"
    )
    health_retries = integer(
        "health-retries", help="Consecutive failures needed to report unhealthy"
    )
    health_start_period = string(
        "health-start-period",
        help="Start period for the container to initialize before "
        "starting health-retries countdown (ms|s|m|h)",
    )
    no_healthcheck = boolean("no-healthcheck", help="Disable any container-specified HEALTHCHECK")
    health_start_interval = string(
        "health-start-interval",
        help="Time between running the check during the start period (ms|s|m|h)",
    )
    pid = string("pid", help="PID namespace to use")
    ipc = string("ipc", help="IPC mode to use")
    uts = string("uts", help="UTS namespace to use")
    oom_score_adj = integer("oom-score-adj", help="Tune host's OOM preferences (-1000 to 1000)")
    memory_reservation = string("memory-reservation", help="Memory soft limit")
    memory_swappiness = integer(
        "memory-swappiness", default=-1, help="Tune container memory swappiness (0 to 100)"
    )
    oom_kill_disable = boolean("oom-kill-disable", help="Disable OOM Killer")
    blkio_weight = integer(
        "blkio-weight", help="Block IO (relative weight), between 10 and 1000, or 0 to disable"
    )
    blkio_weight_device = strings(
        "blkio-weight-device", help="Block IO weight (relative device weight)"
    )
    device_read_bps = strings(
        "device-read-bps", help="Limit read rate (bytes per second) from a device"
    )
    device_write_bps = strings(
        "device-write-bps", help="Limit write rate (bytes per second) to a device"
    )
    device_read_iops = strings(
        "device-read-iops", help="Limit read rate (IO per second) from a device"
    )
    device_write_iops = strings(
        "device-write-iops", help="Limit write rate (IO per second) to a device"
    )
    label_file = strings("label-file", help="Read in a line delimited file of labels")
    domainname = string("domainname", help="Container NIS domain name")
    device_cgroup_rule = strings(
        "device-cgroup-rule", help="Add a rule to the cgroup allowed devices list"
    )
    storage_opt = strings("storage-opt", help="Storage driver options for the container")
    gpus = string("gpus", help="GPU devices to add to the container ('all' to pass all GPUs)")
    annotation = strings(
        "annotation", help="Add an annotation to the container (passed through to the OCI runtime)"
    )
    link = strings("link", help="Add link to another container")


class RunOptions(CreateOptions):
    detach = boolean("detach", "d", help="Run container in background and print container ID")
    sig_proxy = boolean("sig-proxy", default=True, help="Proxy received signals to the process")
