"""The local data plane: a stand-in for the Istio gateway and the two Seldon executors.

A bare Kubernetes API server runs no controllers, so this process plays what Istio and Seldon would
run in a cluster. It reads the program's objects from the API server (`cluster.ClusterSource`) and:

- serves real iris models (`models`) with Seldon's v1 REST protocol (`executor`) and, for KServe
  InferenceServices, KServe's v1 and v2 protocols and model server metrics (`kserve`);
- routes by Gateway API HTTPRoutes (`httproute`) or the VirtualService's weights (`routes`, `gateway`),
  counting every request in Istio's standard metrics (`istio`);
- records Seldon's executor histograms (`metrics`) for Prometheus to scrape;
- generates the load the fortio Jobs describe (`fortio`, `load`);
- injects faults on demand (`faults`).

`app.DataPlane` wires it all; `python -m localenv` runs it. See docs/localenv.md.
"""
