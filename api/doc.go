// Package api serves recon's HTTP API under /api/v1: the divergences and
// repairs the engine holds, the explanation of one key, the decisions people
// make about pending repairs (approve, reject, revert), and the audit log and
// its verification. Every answer is JSON; an error is
// {"error": "...", "status": N} with the status code it names.
//
// Every request needs a bearer token whose SHA-256 is configured
// (http.tokens), compared in constant time. A viewer reads; an approver also
// approves, rejects and reverts; an admin may do everything. The token's
// name is the actor the engine records in the audit log and in approved_by.
// With no token configured the API answers 401 to everything: it is never
// open by accident.
//
// The package decides nothing: it authenticates, checks parameters and
// renders what the engine and the state store answer. It does not own the
// listener either; package pipeline mounts it next to /metrics, /healthz and
// /readyz, which stay open.
package api
