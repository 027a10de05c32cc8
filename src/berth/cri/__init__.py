"""berth as a Kubernetes container runtime: the CRI runtime/v1 gRPC server (`berthd
--cri-socket`), over the same container and image services as the Engine API, with pod sandboxes
held by berth's own pause process (`pause`) and networked through CNI plug-ins (`cni`).

`gen` compiles the proto's messages on first use; `server` serves the two services from the
proto's descriptors; `sandboxes` keeps the pods; `runtime` and `images` are the handlers. This
package is imported by the daemon only when --cri-socket is given (grpc is not cheap to import).
"""
