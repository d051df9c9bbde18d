# Offline toolchain (Pulumi engine, Kubernetes provider, kube-apiserver, etcd) and a local API server.
# See docs/toolchain.md. SELDON_ROLLOUT_CACHE is exported by the main Makefile.
.PHONY: toolchain cluster-up cluster-down cluster-status

toolchain:
	scripts/toolchain

cluster-up:
	scripts/toolchain etcd kube-apiserver kube-controller-manager gateway-api-crds
	scripts/cluster up

cluster-down:
	scripts/cluster down

cluster-status:
	scripts/cluster status
