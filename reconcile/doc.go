// Package reconcile is recon's single writer: it folds decoded change events
// into key states, keeps each (key, target) window, fires expired windows once
// recon's own reading is known to be far enough along, and writes state,
// timers, outbox records, audit records of its decisions and input offsets of
// a batch in one durable commit.
//
// It also carries out what people decide about repairs (govern.go: approve,
// reject, revert), verifies published repairs by convergence (verify.go),
// keeps each dataset's blast-radius guard (guard.go), and answers the reads
// the API serves consistently with what it has folded (explain.go).
//
// Memory does not grow with the number of keys: key states live in the
// store, and the engine keeps at most Options.CacheKeys of them decoded (plus
// those changed since the last durable checkpoint). With Options.Gate it
// fires no window that would take the outbox past its bound.
//
// It does not talk to Kafka: the consumer hands it batches and answers
// watermark questions, and the repair publisher drains the outbox it fills.
package reconcile
