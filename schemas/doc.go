// Package schemas owns recon's Avro: the schemas of its own output events
// (divergence.avsc, repair.avsc, embedded) with their conversion from the
// outbox's JSON form to the Confluent wire format, and the schema-registry
// client that fetches the writer schemas of Avro CDC input by id.
//
// It registers and reads schemas; it does not decide what an event says
// (reconcile and repair do) nor decode CDC envelopes (consumer does).
package schemas
