"""berth as a Kubernetes container runtime: the CRI runtime/v1 gRPC server (`berthd
--cri-socket`), over the same container and image services as the Engine API, with pod sandboxes
held by berth's own pause process (`pause`) and networked through CNI plug-ins (`cni`).

`gen` compiles the proto's messages on first use; `server` serves the two services from the
proto's descriptors; `service` assembles it all for the daemon. `sandboxes` keeps the pods;
`pods` (runtime and pods), `runtime` (containers) and `images` are the handlers, with `containers`
(a CRI container as a berth container), `logs` (the kubelet's log format), `stats`, `metrics`
(cadvisor's, for ListPodSandboxMetrics) and `streaming` (Exec, Attach, PortForward URLs);
`extras` has the streamed lists, the checkpoints refused and UpdatePodSandboxResources. `client` drives a CRI socket from Python (tests,
bench). This package is imported by the daemon only when --cri-socket is given (grpc is not
cheap to import).
"""
