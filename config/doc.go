// Package config reads recon's YAML configuration (DESIGN §6): ${ENV}
// expansion, strict decoding (unknown fields are an error), defaults, and a
// Validate that reports every problem at once, each on its own line with its
// YAML path, e.g.
//
//	recon.yaml: line 14: datasets[0].targets[1].version: unknown version "lsnx": want lsn, position, offset or field:<name>
//
// It owns the Go shape of the file and the checks a file can fail without
// touching anything else. It does no network I/O and does not check that
// topics, files or brokers exist: cmd/recon does that when it wires things up.
// Type and version settings are checked with the parsers of package compare,
// so that the config and the data path can never disagree about them.
//
// # Defaults
//
// ApplyDefaults fills a setting that is absent (or zero):
//
//	kafka.brokers                   [127.0.0.1:9092]
//	kafka.group                     recon
//	kafka.client_id                 recon
//	kafka.max_record_bytes          1048576 (1 MiB; larger records go to the DLQ undecoded, reason oversized)
//	state.dir                       ./recon-data
//	http.listen                     127.0.0.1:8080
//	http.tokens                     [] (the API answers 401 to every request)
//	http.tls                        none (plain HTTP)
//	outputs.divergences             recon.divergences
//	outputs.repairs                 recon.repairs
//	outputs.dlq                     recon.dlq
//	outputs.audit                   "" (the audit log is not mirrored to Kafka)
//	outputs.format                  json
//	outbox.max_bytes                268435456 (256 MiB; consumption pauses above it; at least 64 KiB)
//	datasets[].window               30s
//	datasets[].source_complete      false
//	datasets[].repair.mode          dry-run
//	datasets[].repair.auto_kinds    [missing, lagging, orphan]
//	datasets[].repair.payload       full
//	datasets[].repair.max_per_minute 600 (0 means 600; negative is an error)
//	datasets[].repair.max_divergent_ratio 0.1 (absent means 0.1; 0 turns it off; from 0 to 1)
//	datasets[].compare.float_tolerance 0
//	datasets[].compare.case_insensitive false
//
// # Column names and types
//
// compare.types names what a column is when a message does not say:
// decimal(S), timestamp, int, string, bool, float, uuid, and timestamp_s,
// timestamp_ms, timestamp_us, timestamp_ns. With them the same row sent as
// Debezium JSON with or without the schema wrapper, Debezium Avro, or flat JSON
// from a MySQL-style target digests the same (see package compare). Plain
// timestamp reads an epoch number's unit from its magnitude (< 1e11 seconds,
// < 1e14 ms, < 1e17 µs, else ns), which holds for instants from 1973-03-03
// to 5138-11-16 and lets a source in µs and a target in ms share one type;
// timestamp_ms and friends fix the unit for every system of the dataset, for
// instants outside that range.
//
// compare.case_insensitive: true folds column names to lower case before they
// are matched, in the settings (key, rename, ignore, types) and in every row,
// so "Amount" on one side and "amount" on the other are one column. Keys and
// rows in events then carry the lower-case names. Settings that differ only in
// case are reported, since folding would merge them.
//
// Nothing else has a default. digest.key in particular is required (at least
// 16 bytes, shared by all instances): set it from the environment with
// digest: {key: ${RECON_DIGEST_KEY}}.
//
// # Environment
//
// ${NAME} and $NAME are replaced in the file's text before it is parsed, with
// os.Expand semantics; an unset variable becomes "" and is reported by
// Validate only where a value is required. $$ is a literal $.
package config
