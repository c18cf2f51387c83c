package consumer

import (
	"testing"

	"github.com/recon-dev/recon/compare"
)

// runFlatCases is runDecodeCases for flat-json.
func runFlatCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	runCases(t, cases, "offset", func(v, l compare.VersionSpec, unmarshal func([]byte, any) error) Decoder {
		d := NewFlatJSON(v, l)
		d.dj.unmarshal = unmarshal
		return d
	})
}

// offV is the offset version of meta (offset 7, plus one).
var offV = compare.Version{A: 8}

func TestFlatJSONOps(t *testing.T) {
	key := []byte(`{"id":42}`)
	k42 := map[string]any{"id": num("42")}
	row := map[string]any{"id": num("42"), "status": "paid"}
	flat := func(meta string) []byte { return []byte(`{"id":42,"status":"paid"` + meta + `}`) }
	runFlatCases(t, []decodeCase{{
		// c is an upsert of the row; __source_ts_ms is the event time.
		name: "create", key: key, value: flat(`,"__op":"c","__source_ts_ms":1718454600123`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		// u is an upsert; __deleted "false" (rewrite mode) changes nothing.
		name: "update", key: key, value: flat(`,"__op":"u","__deleted":"false","__source_ts_ms":1718454600123`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		// r, a snapshot read, is an upsert.
		name: "snapshot read", key: key, value: flat(`,"__op":"r"`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// d is a delete of the row carried (rewrite mode sends the before row).
		name: "delete op", key: key, value: flat(`,"__op":"d","__deleted":"true"`),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// t changes no single row: skipped, with its time.
		name: "truncate", value: []byte(`{"__op":"t","__source_ts_ms":1718454600123}`),
		want: Decoded{Skip: SkipTruncate, EventTime: pgTime},
	}, {
		// m, a logical-decoding message, is not a row change.
		name: "message", key: []byte(`{"prefix":"audit"}`), value: []byte(`{"__op":"m"}`),
		want: Decoded{Skip: SkipMessage, EventTime: recordTime},
	}, {
		// add.fields without op: every record is an upsert.
		name: "missing op", key: key, value: flat(""),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// A null __op is the same as none.
		name: "null op", key: key, value: flat(`,"__op":null`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// __deleted "true" without __op (add.fields unset, rewrite mode) is a delete.
		name: "deleted string true", key: key, value: flat(`,"__deleted":"true"`),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// __deleted as a JSON boolean (a hand-built or re-serialized record) works too.
		name: "deleted bool true", key: key, value: flat(`,"__deleted":true`),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// Boolean false is an upsert.
		name: "deleted bool false", key: key, value: flat(`,"__deleted":false`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// Every "__" field is metadata, known or not; none reaches the row.
		name: "metadata stripped", key: key,
		value: flat(`,"__op":"u","__table":"orders","__db":"shop","__lsn":5,"__source_txId":771,"__deleted":"false"`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// Null value: a tombstone (or, with delete.tombstone.handling.mode=tombstone, the delete itself).
		name: "tombstone", key: key, value: nil,
		want: Decoded{Tombstone: true},
	}, {
		// The JSON literal null is a tombstone too.
		name: "tombstone literal", key: key, value: []byte(" null "),
		want: Decoded{Tombstone: true},
	}, {
		// A wrapped null payload is a tombstone.
		name: "tombstone wrapped", key: key, value: []byte(`{"schema":null,"payload":null}`),
		want: Decoded{Tombstone: true},
	}})
}

func TestFlatJSONVersions(t *testing.T) {
	key := []byte(`{"id":42}`)
	k42 := map[string]any{"id": num("42")}
	row := map[string]any{"id": num("42"), "version": num("9")}
	runFlatCases(t, []decodeCase{{
		// lsn reads __lsn (add.fields=lsn).
		name: "lsn", version: "lsn", key: key, value: []byte(`{"id":42,"version":9,"__lsn":24023128}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: lsnV, EventTime: recordTime},
	}, {
		// position from add.fields=source.file,source.pos,source.row.
		name: "position source fields", version: "position", key: key,
		value: []byte(`{"id":42,"version":9,"__source_file":"mysql-bin.000003","__source_pos":154,"__source_row":2}`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 3, B: 154, C: 2}, EventTime: recordTime},
	}, {
		// position from the short names (add.fields=file,pos,row); a missing row is row 0.
		name: "position short fields", version: "position", key: key,
		value: []byte(`{"id":42,"version":9,"__file":"mysql-bin.000004","__pos":10}`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 4, B: 10}, EventTime: recordTime},
	}, {
		// field:<name> reads a row column.
		name: "field", version: "field:version", key: key, value: []byte(`{"id":42,"version":9}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 9}, EventTime: recordTime},
	}, {
		// field:__<name> reads a metadata field even though it is stripped from the row.
		name: "field metadata", version: "field:__source_txId", key: key, value: []byte(`{"id":42,"version":9,"__source_txId":771}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 771}, EventTime: recordTime},
	}, {
		// offset is the Kafka offset plus one.
		name: "offset", version: "offset", key: key, value: []byte(`{"id":42,"version":9}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// A lineage field that is absent yields a zero lineage, not an error.
		name: "lineage absent", version: "lsn", lineage: "field:_src_lsn", key: key,
		value: []byte(`{"id":42,"version":9,"__lsn":24023128}`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: lsnV, EventTime: recordTime},
	}, {
		// A present lineage field is read from the row.
		name: "lineage present", version: "lsn", lineage: "field:version", key: key,
		value: []byte(`{"id":42,"version":9,"__lsn":24023128}`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: lsnV, Lineage: compare.Version{A: 9}, EventTime: recordTime},
	}, {
		// __source_ts_ms wins over __ts_ms: it is when the database made the change.
		name: "event time source first", key: key, value: []byte(`{"id":42,"version":9,"__ts_ms":1718454600999,"__source_ts_ms":1718454600123}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		// __ts_ms (connector time) is used when the source time is absent.
		name: "event time ts_ms", key: key, value: []byte(`{"id":42,"version":9,"__ts_ms":1718454600123}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		// Without either, the Kafka record timestamp.
		name: "event time record", key: key, value: []byte(`{"id":42,"version":9}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}})
}

func TestFlatJSONValues(t *testing.T) {
	k42 := map[string]any{"id": num("42")}
	runFlatCases(t, []decodeCase{{
		// A plain key object (key.converter schemas.enable=false).
		name: "key plain", key: []byte(`{"id":42}`), value: []byte(`{"id":42}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: k42, Version: offV, EventTime: recordTime},
	}, {
		// A JsonConverter-wrapped key is unwrapped.
		name: "key wrapped", key: wrap(`{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"pg.public.t.Key"}`, `{"id":42}`),
		value: []byte(`{"id":42}`),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: k42, Version: offV, EventTime: recordTime},
	}, {
		// A table without a primary key has a null key: Key is nil.
		name: "key null", key: nil, value: []byte(`{"id":42}`),
		want: Decoded{Op: compare.OpUpsert, Row: k42, Version: offV, EventTime: recordTime},
	}, {
		// A wrapped value: the payload is the row, and its schema's logical
		// types apply (Decimal bytes "BOI=" is 1250 unscaled, scale 2).
		name: "value wrapped", key: []byte(`{"id":42}`),
		value: wrap(`{"type":"struct","fields":[`+cols(col("id", "int64", ""), col("amount", "bytes", nameDecimal, "scale", "2"),
			col("__op", "string", ""))+`],"optional":false,"name":"pg.public.t.Value"}`,
			`{"id":42,"amount":"BOI=","__op":"u","__source_ts_ms":1718454600123}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: map[string]any{"id": num("42"), "amount": dec("1250", 2)}, Version: offV, EventTime: pgTime},
	}, {
		// A value wrapped with a null schema is read as its payload.
		name: "value wrapped null schema", key: []byte(`{"id":42}`), value: []byte(`{"schema":null,"payload":{"id":42,"__op":"d"}}`),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: k42, Version: offV, EventTime: recordTime},
	}, {
		// An unchanged TOASTed column is "not sent", never data.
		name: "toast placeholder", key: []byte(`{"id":42}`), value: []byte(`{"id":42,"doc":"__debezium_unavailable_value","__op":"u"}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: map[string]any{"id": num("42"), "doc": compare.Unavailable{}}, Version: offV, EventTime: recordTime},
	}, {
		// Integers past 2^53 and 2^64 stay exact json.Number text.
		name: "big integers", key: []byte(`{"id":9007199254740993}`),
		value: []byte(`{"id":9007199254740993,"n":123456789012345678901234567890}`),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("9007199254740993")},
			Row: map[string]any{"id": num("9007199254740993"), "n": num("123456789012345678901234567890")}, Version: offV, EventTime: recordTime},
	}, {
		// Only the metadata: an upsert of an empty row (the key still names it).
		name: "only metadata", key: []byte(`{"id":42}`), value: []byte(`{"__op":"c"}`),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: map[string]any{}, Version: offV, EventTime: recordTime},
	}})
}

func TestFlatJSONErrors(t *testing.T) {
	key := []byte(`{"id":42}`)
	runFlatCases(t, []decodeCase{{
		// Truncated JSON.
		name: "malformed", key: key, value: []byte(`{"id":42,`), reason: ReasonMalformed, errHas: "value",
	}, {
		// Trailing garbage after the object.
		name: "trailing data", key: key, value: []byte(`{"id":42} x`), reason: ReasonMalformed, errHas: "value",
	}, {
		// The value must be an object: the row.
		name: "array value", key: key, value: []byte(`[1,2]`), reason: ReasonMalformed, errHas: "want a JSON object",
	}, {
		// A bare string is not a row.
		name: "string value", key: key, value: []byte(`"x"`), reason: ReasonMalformed, errHas: "want a JSON object",
	}, {
		// A wrapper whose payload is not an object.
		name: "wrapped scalar payload", key: key, value: []byte(`{"schema":null,"payload":5}`), reason: ReasonMalformed, errHas: "payload",
	}, {
		// An op Debezium never writes.
		name: "unknown op", key: key, value: []byte(`{"id":42,"__op":"x"}`), reason: ReasonUnknownOp, errHas: `"x"`,
	}, {
		// An op that is not a string.
		name: "op not a string", key: key, value: []byte(`{"id":42,"__op":1}`), reason: ReasonUnknownOp, errHas: "want a string",
	}, {
		// lsn configured but add.fields lacks lsn.
		name: "missing lsn", version: "lsn", key: key, value: []byte(`{"id":42,"__op":"u"}`), reason: ReasonMissingVersion, errHas: "__lsn",
	}, {
		// A negative LSN is not a version.
		name: "negative lsn", version: "lsn", key: key, value: []byte(`{"id":42,"__lsn":-1}`), reason: ReasonBadValue, errHas: "__lsn",
	}, {
		// position configured without the binlog file.
		name: "missing file", version: "position", key: key, value: []byte(`{"id":42,"__source_pos":1}`), reason: ReasonMissingVersion, errHas: "__source_file",
	}, {
		// position with a file but no pos.
		name: "missing pos", version: "position", key: key, value: []byte(`{"id":42,"__source_file":"mysql-bin.000003"}`), reason: ReasonMissingVersion, errHas: "__source_pos",
	}, {
		// A binlog file name without a numeric suffix cannot be ordered.
		name: "bad file", version: "position", key: key, value: []byte(`{"id":42,"__source_file":"binlog","__source_pos":1}`), reason: ReasonBadValue, errHas: "numeric suffix",
	}, {
		// __deleted must be "true" or "false".
		name: "bad deleted string", key: key, value: []byte(`{"id":42,"__deleted":"yes"}`), reason: ReasonBadValue, errHas: "__deleted",
	}, {
		// ... or a boolean, not a number.
		name: "bad deleted number", key: key, value: []byte(`{"id":42,"__deleted":1}`), reason: ReasonBadValue, errHas: "__deleted",
	}, {
		// A non-integer event time.
		name: "bad ts", key: key, value: []byte(`{"id":42,"__source_ts_ms":"soon"}`), reason: ReasonBadValue, errHas: "__source_ts_ms",
	}, {
		// The key must be a struct.
		name: "scalar key", key: []byte(`42`), value: []byte(`{"id":42}`), reason: ReasonMalformed, errHas: "key",
	}, {
		// A wrapped value whose schema is not a struct.
		name: "non-struct schema", key: key, value: []byte(`{"schema":{"type":"string"},"payload":{"id":42}}`), reason: ReasonUnknownSchema, errHas: "row struct",
	}})
}

// TestFlatJSONMatchesDebeziumJSON: the same change as a debezium-json
// envelope and as an unwrapped flat record normalizes to the same digest.
func TestFlatJSONMatchesDebeziumJSON(t *testing.T) {
	rules, err := compare.NewRules([]string{"id"}, nil, nil, map[string]string{"amount": "decimal(2)"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := compare.NewHasher([]byte("cross-format-test-key"))
	key := []byte(`{"id":42}`)
	after := `{"id":42,"amount":"12.50","status":"paid","note":null}`
	lsn := compare.VersionSpec{Kind: compare.VersionLSN}

	env, err := NewDebeziumJSON(lsn, compare.VersionSpec{}).Decode(key, []byte(pgEvent("u", "null", after)), meta)
	if err != nil {
		t.Fatal(err)
	}
	flatValue := `{"id":42,"amount":"12.50","status":"paid","note":null,"__op":"u","__lsn":24023128,"__source_ts_ms":1718454600123,"__deleted":"false"}`
	flat, err := NewFlatJSON(lsn, compare.VersionSpec{}).Decode(key, []byte(flatValue), meta)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecoded(env, flat) {
		t.Fatalf("decoded differently:\ndebezium %s\nflat     %s", showDecoded(env), showDecoded(flat))
	}
	digest := func(d Decoded) compare.Digest {
		row, _, err := rules.Normalize(d.Row)
		if err != nil {
			t.Fatal(err)
		}
		return h.RowDigest(row)
	}
	if a, b := digest(env), digest(flat); a != b || a.IsZero() {
		t.Fatalf("digests differ: debezium %s, flat %s", a, b)
	}
}
