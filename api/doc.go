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
// Endpoints, under /api/v1 (GET for viewers, POST for approvers):
//
//	GET  divergences?dataset=&target=&kind=&state=&limit=&cursor=   {items, next_cursor}
//	GET  keys/{dataset}/{key}                                        reconcile.KeyExplanation
//	GET  repairs?dataset=&target=&state=&limit=&cursor=              {items, next_cursor}
//	GET  repairs/{id}                                                reconcile.RepairView
//	POST repairs/{id}/approve | reject {reason} | revert             reconcile.RepairView
//	GET  audit?since=&limit=                                         {items, next_since}
//	GET  audit/verify                                                {ok, records, head, break}
//	GET  guards                                                      {items}
//
// {key} is the canonical key (compare.Key.String), URL-escaped. Listings
// are paged by the engine's opaque cursor. Unknown query parameters are
// refused, so a misspelt filter never widens a listing.
//
// The package decides nothing: it authenticates, checks parameters and
// renders what the engine and the state store answer. It does not own the
// listener either; package pipeline mounts it next to /metrics, /healthz and
// /readyz, which stay open.
package api
