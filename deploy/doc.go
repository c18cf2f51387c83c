// Package deploy holds what runs recon in production and watches it: the
// Grafana dashboard, Prometheus alert and recording rules with their unit
// tests, runbooks, Kubernetes manifests, the Dockerfile and a compose file.
// Its Go tests keep those files honest against the metrics recon exports.
package deploy
