"""The shim: the per-container monitors that hold running containers (stdio, logs, exit
status, embedded DNS, network set-up) and the fork server that starts them.

Imports `runtime`, `cgroups`, `oci`, `linux`, `fs`, `errors`. Empty on purpose: berthd's
container service imports `berth.shim.protocol` and nothing else of the shim, and this package
must cost it nothing. Modules: `protocol` (what berthd and a shim say, typed and versioned),
`stdio` (stdio, channels, the json-file log), `dns`, `netsetup`, `runtimes` (the `Runtime`
protocol: berth's own, an OCI command line), `monitor` (the loop), `forkserver`, `launch`
(berthd's side: starting the fork server).
"""
