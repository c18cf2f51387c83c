// Package sim is the simulator behind `recon demo`: recon's main job with no
// setup, on an embedded broker, with a ground truth to hold it to.
//
// It owns a simulated Postgres source (an orders table whose changes it writes
// as schema-wrapped Debezium JSON), a simulated MySQL-style replica target that
// copies each change after a realistic delay and writes its own plain Debezium
// JSON, the faults injected into that copy at known rates (dropped inserts,
// updates and deletes, corrupted amounts) and the harmless noise around it
// (duplicates, redelivered old versions, delays inside the window), a repair
// consumer that applies recon's published repairs to the replica, an observer
// of recon's divergence events, and the report that compares what was
// injected with what recon detected.
//
// With Options.Format avro the source writes Debezium Avro instead (the
// Confluent wire format, its schemas registered in the schema registry the
// embedded broker serves), the replica writes flat JSON (the unwrap SMT's
// row with "__" metadata, DATETIME text), recon publishes its events in Avro,
// and the observer and the repair consumer read them through the registry:
// the same ground truth, with every column encoded differently on each side.
//
// It does not reach into recon: recon runs through pipeline.New and Run like
// `recon run`, and the simulator sees only what any Kafka client would see —
// the input records it produced and the events recon published. The one
// exception is the end of a run, where recon's own store tells when nothing is
// left in flight, so that a late false positive cannot slip past the report.
package sim
