// Package repair turns divergences into repair events under a dataset's policy
// (off, dry-run, approve, auto with a blast-radius guard), renders recon's output
// events, and publishes the outbox to Kafka behind a circuit breaker.
//
// Planning is pure and ids derive from content, so a repair planned twice is the
// same repair. It does not decode CDC and does not judge keys.
package repair
