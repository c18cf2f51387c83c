package consumer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
)

var (
	recordTime = time.Date(2024, 6, 15, 12, 31, 0, 0, time.UTC)
	meta       = Meta{Offset: 7, Timestamp: recordTime}
	// pgTime is source.ts_ms of pgEvent.
	pgTime = utc("2024-06-15T12:30:00.123Z")
	// lsnV is source.lsn of pgEvent.
	lsnV = compare.Version{A: 24023128}
)

type decodeCase struct {
	name             string
	version, lineage string // specs as configured; version "" means lsn
	key, value       []byte
	want             Decoded
	reason           string // the DecodeError reason, when an error is expected
	errHas           string // a piece of its message
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	runCases(t, cases, "lsn", func(v, l compare.VersionSpec, unmarshal func([]byte, any) error) Decoder {
		d := NewDebeziumJSON(v, l)
		d.unmarshal = unmarshal
		return d
	})
}

// runCases runs table cases against decoders from mk, once per JSON library:
// encoding/json is the reference the production library must match. Each
// record is decoded twice: the first call parses a schema wrapper, the second
// takes the cached-schema fast path; both must agree.
func runCases(t *testing.T, cases []decodeCase, defaultVersion string,
	mk func(v, l compare.VersionSpec, unmarshal func([]byte, any) error) Decoder) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vs := tc.version
			if vs == "" {
				vs = defaultVersion
			}
			version, err := compare.ParseVersionSpec(vs)
			if err != nil {
				t.Fatal(err)
			}
			lineage, err := compare.ParseLineageSpec(tc.lineage)
			if err != nil {
				t.Fatal(err)
			}
			for _, lib := range []struct {
				name string
				fn   func([]byte, any) error
			}{{"goccy", unmarshalNumbers}, {"encoding/json", stdUnmarshal}} {
				d := mk(version, lineage, lib.fn)
				for pass := range 2 {
					got, err := d.Decode(tc.key, tc.value, meta)
					checkDecode(t, lib.name, pass, tc, got, err)
				}
			}
		})
	}
}

func checkDecode(t *testing.T, lib string, pass int, tc decodeCase, got Decoded, err error) {
	t.Helper()
	if tc.reason != "" {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("%s pass %d: err = %v (%T), want a *DecodeError %q", lib, pass, err, err, tc.reason)
		}
		if de.Reason != tc.reason || !strings.Contains(err.Error(), tc.errHas) {
			t.Fatalf("%s pass %d: err = %q, want reason %q containing %q", lib, pass, err, tc.reason, tc.errHas)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s pass %d: unexpected error: %v", lib, pass, err)
	}
	if !sameDecoded(got, tc.want) {
		t.Fatalf("%s pass %d:\n got %s\nwant %s", lib, pass, showDecoded(got), showDecoded(tc.want))
	}
	if err := noFloats(got.Row); err != nil {
		t.Fatalf("%s pass %d: row: %v", lib, pass, err)
	}
	if err := noFloats(got.Key); err != nil {
		t.Fatalf("%s pass %d: key: %v", lib, pass, err)
	}
}

func TestDecodeOps(t *testing.T) {
	key := []byte(`{"id":42}`)
	row42 := map[string]any{"id": num("42"), "status": "new"}
	paid42 := map[string]any{"id": num("42"), "status": "paid"}
	runDecodeCases(t, []decodeCase{{
		// c is an upsert of the after image; version is source.lsn, event time source.ts_ms.
		name: "create", key: key, value: []byte(pgEvent("c", "null", `{"id":42,"status":"new"}`)),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: row42, Version: lsnV, EventTime: pgTime},
	}, {
		// u takes after, never before (REPLICA IDENTITY FULL sends both).
		name: "update", key: key, value: []byte(pgEvent("u", `{"id":42,"status":"new"}`, `{"id":42,"status":"paid"}`)),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: paid42, Version: lsnV, EventTime: pgTime},
	}, {
		// d reports the before image, so a field version can still be read.
		name: "delete", key: key, value: []byte(pgEvent("d", `{"id":42,"status":"paid"}`, "null")),
		want: Decoded{Op: compare.OpDelete, Key: map[string]any{"id": num("42")}, Row: paid42, Version: lsnV, EventTime: pgTime},
	}, {
		// REPLICA IDENTITY NOTHING: a delete without before is still a delete of the key.
		name: "delete without before", key: key, value: []byte(pgEvent("d", "null", "null")),
		want: Decoded{Op: compare.OpDelete, Key: map[string]any{"id": num("42")}, Version: lsnV, EventTime: pgTime},
	}, {
		// A snapshot read is an upsert; snapshot is the string enum "last", not a boolean.
		name: "snapshot read", key: key,
		value: []byte(strings.Replace(pgEvent("r", "null", `{"id":42,"status":"new"}`), `"snapshot":"false"`, `"snapshot":"last"`, 1)),
		want:  Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: row42, Version: lsnV, EventTime: pgTime},
	}, {
		// Truncate changes no single row: skipped, with its time for watermarks.
		name: "truncate", value: []byte(pgEvent("t", "null", "null")),
		want: Decoded{Skip: SkipTruncate, EventTime: pgTime},
	}, {
		// A logical-decoding message (pg_logical_emit_message) is not a row change.
		name: "message", key: []byte(`{"prefix":"audit"}`),
		value: []byte(`{"op":"m","ts_ms":1718454600456,"source":{"ts_ms":1718454600123,"snapshot":"false","schema":"","table":"","lsn":24023200},"message":{"prefix":"audit","content":"aGk="}}`),
		want:  Decoded{Skip: SkipMessage, EventTime: pgTime},
	}, {
		// A null value is the compaction tombstone after a delete, not a change.
		name: "tombstone null", key: key, value: nil,
		want: Decoded{Tombstone: true},
	}, {
		// Some tools write the JSON literal instead of a Kafka null.
		name: "tombstone literal null", key: key, value: []byte(" null\n"),
		want: Decoded{Tombstone: true},
	}, {
		// A wrapped null value is still no change.
		name: "tombstone wrapped", key: key, value: []byte(`{"schema":null,"payload":null}`),
		want: Decoded{Tombstone: true},
	}, {
		// Without source.ts_ms the change time falls back to the record timestamp.
		name: "event time from record", key: key, version: "offset",
		value: []byte(`{"op":"c","after":{"id":42,"status":"new"}}`),
		want:  Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: row42, Version: compare.Version{A: 8}, EventTime: recordTime},
	}})
}

func TestDecodeShapesAndKeys(t *testing.T) {
	schema := envSchema(cols(col("id", "int64", ""), col("status", "string", "")))
	payload := pgEvent("u", "null", `{"id":42,"status":"paid"}`)
	paid := map[string]any{"id": num("42"), "status": "paid"}
	wrappedKey := []byte(`{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"pg.public.t.Key"},"payload":{"id":42}}`)
	id42 := map[string]any{"id": num("42")}
	runDecodeCases(t, []decodeCase{{
		// The wrapper is recognized and its payload is the envelope.
		name: "wrapped value, wrapped key", key: wrappedKey, value: wrap(schema, payload),
		want: Decoded{Op: compare.OpUpsert, Key: id42, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// Shapes are independent: a wrapped value may come with a plain key.
		name: "wrapped value, plain key", key: []byte(`{"id":42}`), value: wrap(schema, payload),
		want: Decoded{Op: compare.OpUpsert, Key: id42, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// And the reverse.
		name: "plain value, wrapped key", key: wrappedKey, value: []byte(payload),
		want: Decoded{Op: compare.OpUpsert, Key: id42, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// Whitespace around the wrapper defeats only the fast path, not decoding.
		name: "wrapped with spaces", key: []byte(" {\"id\" : 42} "),
		value: []byte("{ \"schema\" : " + schema + " ,\n \"payload\" : " + payload + " }"),
		want:  Decoded{Op: compare.OpUpsert, Key: id42, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// Payload before schema is still the wrapper.
		name: "payload first", value: []byte(`{"payload":` + payload + `,"schema":` + schema + `}`),
		want: Decoded{Op: compare.OpUpsert, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// "schema":null is schemas.enable=true with schemaless data: values stay raw.
		name: "wrapped with null schema", value: []byte(`{"schema":null,"payload":` + payload + `}`),
		want: Decoded{Op: compare.OpUpsert, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// A table without a primary key has a null Kafka key.
		name: "null key", key: nil, value: []byte(payload),
		want: Decoded{Op: compare.OpUpsert, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// A wrapped null key is a null key too.
		name: "wrapped null key", key: []byte(`{"schema":null,"payload":null}`), value: []byte(payload),
		want: Decoded{Op: compare.OpUpsert, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// Key columns named schema and payload plus another are a plain key, not a wrapper.
		name: "key columns named like the wrapper", key: []byte(`{"schema":"public","payload":7,"id":1}`), value: []byte(payload),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"schema": "public", "payload": num("7"), "id": num("1")}, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// Wrapped keys get their logical types too: a timestamp primary key.
		name:  "wrapped key with logical type",
		key:   []byte(`{"schema":{"type":"struct","fields":[` + col("at", "int64", nameMicroTimestamp) + `],"optional":false},"payload":{"at":1718454600123456}}`),
		value: []byte(payload),
		want:  Decoded{Op: compare.OpUpsert, Key: map[string]any{"at": utc("2024-06-15T12:30:00.123456Z")}, Row: paid, Version: lsnV, EventTime: pgTime},
	}, {
		// A key value that does not fit its logical type is bad data, named as a key column.
		name:   "wrapped key with bad logical value",
		key:    []byte(`{"schema":{"type":"struct","fields":[` + col("at", "int64", nameMicroTimestamp) + `],"optional":false},"payload":{"at":"noon"}}`),
		value:  []byte(payload),
		reason: ReasonBadValue, errHas: `key column "at": want integer, got string`,
	}, {
		// Debezium keys are structs; a bare number cannot name columns.
		name: "scalar key", key: []byte(`42`), value: []byte(payload),
		reason: ReasonMalformed, errHas: "key: want a JSON object",
	}, {
		// Same for a wrapped primitive key.
		name: "wrapped scalar key", key: []byte(`{"schema":{"type":"int64","optional":false},"payload":42}`), value: []byte(payload),
		reason: ReasonMalformed, errHas: "key: payload: want a JSON object",
	}, {
		// A truncated key is not JSON.
		name: "broken key", key: []byte(`{"id":`), value: []byte(payload),
		reason: ReasonMalformed, errHas: "key:",
	}})
}

func TestDecodeBadInput(t *testing.T) {
	decimal := envSchema(col("amount", "bytes", nameDecimal, "scale", "2"))
	runDecodeCases(t, []decodeCase{{
		// Not JSON at all.
		name: "malformed json", value: []byte(`{"op":"c","after":{"id":`),
		reason: ReasonMalformed, errHas: "value:",
	}, {
		// A decoder reads a stream; data after the record must not be ignored.
		name: "trailing garbage", value: []byte(pgEvent("c", "null", `{"id":1}`) + ` {"op":"d"}`),
		reason: ReasonMalformed, errHas: "after top-level value",
	}, {
		// An envelope is an object.
		name: "value is an array", value: []byte(`[1,2,3]`),
		reason: ReasonMalformed, errHas: "value:",
	}, {
		// The wrapper's payload must hold the envelope.
		name: "payload not an object", value: []byte(`{"schema":null,"payload":"c"}`),
		reason: ReasonMalformed, errHas: "value:",
	}, {
		// Unknown ops are counted apart: they may mean a newer Debezium.
		name: "unknown op", value: []byte(`{"op":"x","after":{"id":1},"source":{"lsn":1}}`),
		reason: ReasonUnknownOp, errHas: `op "x"`,
	}, {
		// A delete's before image is a row or null.
		name: "delete with scalar before", value: []byte(pgEvent("d", `"x"`, "null")),
		reason: ReasonMalformed, errHas: `"before" that is not an object`,
	}, {
		// Without op there is no change to speak of.
		name: "missing op", value: []byte(`{"after":{"id":1},"source":{"lsn":1}}`),
		reason: ReasonMalformed, errHas: `missing "op"`,
	}, {
		// An update must carry the new row.
		name: "update without after", value: []byte(pgEvent("u", `{"id":1}`, "null")),
		reason: ReasonMalformed, errHas: `op "u" without "after"`,
	}, {
		// PG incremental-snapshot events have no LSN: not orderable by lsn.
		name: "missing lsn", value: []byte(`{"op":"r","after":{"id":1},"source":{"ts_ms":1718454600123,"snapshot":"incremental"}}`),
		reason: ReasonMissingVersion, errHas: "source.lsn",
	}, {
		// A negative LSN cannot be a position.
		name: "negative lsn", value: []byte(`{"op":"c","after":{"id":1},"source":{"lsn":-5}}`),
		reason: ReasonBadValue, errHas: "source.lsn",
	}, {
		// '!' is not base64: the column is named so the DLQ reader can find it.
		name: "bad base64 decimal", value: wrap(decimal, pgEvent("c", "null", `{"amount":"Ae!6"}`)),
		reason: ReasonBadValue, errHas: `column "amount": bad base64`,
	}, {
		// A Decimal column must be base64 text or a number, never a boolean.
		name: "decimal of wrong type", value: wrap(decimal, pgEvent("c", "null", `{"amount":true}`)),
		reason: ReasonBadValue, errHas: `column "amount": want base64 string or number, got boolean`,
	}, {
		// MicroTimestamp is an int64; a string is a wrong logical value.
		name: "timestamp as string", value: wrap(envSchema(col("at", "int64", nameMicroTimestamp)), pgEvent("c", "null", `{"at":"2024-06-15"}`)),
		reason: ReasonBadValue, errHas: `column "at": want integer, got string`,
	}, {
		// A Date must fit int32 days.
		name: "date out of range", value: wrap(envSchema(col("d", "int32", nameDate)), pgEvent("c", "null", `{"d":99999999999}`)),
		reason: ReasonBadValue, errHas: `column "d"`,
	}, {
		// A Decimal's scale lives only in its schema; without it the value is unknowable.
		name: "decimal without scale", value: wrap(envSchema(col("amount", "bytes", nameDecimal)), pgEvent("c", "null", `{"amount":"AeI6"}`)),
		reason: ReasonUnknownSchema, errHas: "scale",
	}, {
		// An envelope schema is a struct.
		name: "schema not a struct", value: wrap(`{"type":"string"}`, pgEvent("c", "null", `{"id":1}`)),
		reason: ReasonUnknownSchema, errHas: "envelope struct",
	}, {
		// Rescaling 1e999999999 would need a billion digits.
		name: "oversized numeric decimal", value: wrap(decimal, pgEvent("c", "null", `{"amount":1e999999999}`)),
		reason: ReasonOversized, errHas: `column "amount"`,
	}, {
		// A NUMERIC decimal with more digits than its scale would lose precision.
		name: "numeric decimal beyond scale", value: wrap(decimal, pgEvent("c", "null", `{"amount":1234.567}`)),
		reason: ReasonBadValue, errHas: "more than 2 fractional digits",
	}, {
		// source.ts_ms is an integer of milliseconds.
		name: "fractional ts_ms", value: []byte(`{"op":"c","after":{"id":1},"source":{"ts_ms":1.5,"lsn":1}}`),
		reason: ReasonBadValue, errHas: "source.ts_ms",
	}, {
		// The wrapper needs its payload.
		name: "schema without payload", value: []byte(`{"schema":{"type":"struct"},"op":"c","after":{"id":1}}`),
		reason: ReasonMalformed, errHas: `"schema" without "payload"`,
	}})
}
