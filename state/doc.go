// Package state owns recon's durable state: the Badger layout of key states
// (version vectors, source history, target heads, open divergences), window
// timers, the outbox of records waiting to be published, the input offsets
// the state reflects, repair and divergence records with the indexes that
// page them and find those of one key (records.go), repair verification
// timers, the blast-radius guard's state, and the hash-chained audit log of
// decisions (audit.go), which VerifyAudit checks link by link. layout.go is
// the one place that decides how keys look and which layout version a state
// dir must have.
//
// The reconcile engine reads key states one at a time and writes everything a
// poll changed in one Batch; Commit applies it in one synced Badger
// transaction, so state, timers, outbox and offsets never disagree after a
// crash: on restart, consumption resumes from Offsets and whatever the outbox
// holds is published (again, at worst; records carry deterministic ids).
// OutboxGate (gate.go) bounds the outbox: those who fill it stop while it
// holds max bytes, until the publisher drains it to 90%.
//
// The package does not know Kafka, verdicts or policy: topics are names,
// outbox records are opaque bytes and audit actions are the caller's words.
// It does not migrate layouts: a state dir from another layout version is
// refused at Open. It does not cache: Badger's block cache is the cache, and
// the engine holds what it is working on.
package state
