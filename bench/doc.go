// Package bench measures what recon costs on top of reading Kafka. On an
// embedded in-memory broker it produces a generated Debezium workload once,
// then reads it twice: with a bare franz-go consumer that does nothing with
// the records (the raw rate), and with recon's real pipeline (the full rate:
// decode, normalize, digest, key state, windows, one synced Badger batch per
// chunk). The ratio full/raw is the figure to watch.
//
// The workload is one dataset, orders, keyed by id, with a Postgres source and
// a Postgres replica as its target. Records are Debezium JSON without the
// schema wrapper (JsonConverter with schemas.enable=false, decimals as
// strings): about 600 bytes a record, 10 columns. Half the records are source
// changes, half are the replica applying the same changes in the same order,
// so every window that opens also closes and a correct run opens no
// divergence: that count doubles as a sanity check.
//
// It does not tune anything: the pipeline runs with the settings `recon run`
// would use, and the measurement is one pass, not a statistical study.
package bench
