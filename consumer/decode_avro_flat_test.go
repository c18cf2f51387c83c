package consumer

import (
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
)

func runFlatAvroCases(t *testing.T, f *avroFixture, cases []decodeCase) {
	t.Helper()
	runAvroCases(t, cases, "offset", func(v, l compare.VersionSpec) Decoder { return NewFlatAvro(f.reg, v, l) })
}

// md builds flat metadata values for flatOrder: strings and longs as their
// union members.
func md(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		switch v := kv[i+1].(type) {
		case string:
			m[name] = goavro.Union("string", v)
		case int:
			if name == "source_row" {
				m[name] = goavro.Union("int", int32(v))
			} else {
				m[name] = goavro.Union("long", int64(v))
			}
		}
	}
	return m
}

func TestFlatAvroOps(t *testing.T) {
	f := newAvroFixture(t)
	key := f.encode(t, idKey, map[string]any{"id": int64(42)})
	k42 := map[string]any{"id": num("42")}
	row := orderRow("paid")
	flat := func(m map[string]any) []byte { return f.encode(t, idFlatV1, flatOrder("paid", m)) }
	runFlatAvroCases(t, f, []decodeCase{{
		// c is an upsert of the row; __source_ts_ms is the event time.
		name: "create", key: key, value: flat(md("op", "c", "source_ts_ms", 1718454600123)),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		// u is an upsert; __deleted "false" (rewrite mode) changes nothing.
		name: "update", key: key, value: flat(md("op", "u", "deleted", "false", "source_ts_ms", 1718454600123)),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: pgTime},
	}, {
		name: "snapshot read", key: key, value: flat(md("op", "r")),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// Rewrite mode: the before row with __deleted "true".
		name: "delete", key: key, value: flat(md("op", "d", "deleted", "true")),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// __deleted "true" without __op is a delete.
		name: "deleted without op", key: key, value: flat(md("deleted", "true")),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		// add.fields without op: every record is an upsert.
		name: "no metadata", key: key, value: flat(nil),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: offV, EventTime: recordTime},
	}, {
		name: "truncate", value: flat(md("op", "t", "source_ts_ms", 1718454600123)),
		want: Decoded{Skip: SkipTruncate, EventTime: pgTime},
	}, {
		name: "message", value: flat(md("op", "m")),
		want: Decoded{Skip: SkipMessage, EventTime: recordTime},
	}, {
		// delete.tombstone.handling.mode=tombstone: the null value.
		name: "tombstone", key: key, value: nil,
		want: Decoded{Tombstone: true},
	}, {
		// lsn reads __lsn.
		name: "lsn", version: "lsn", key: key, value: flat(md("op", "u", "lsn", 24023128)),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: lsnV, EventTime: recordTime},
	}, {
		// position reads __source_file, __source_pos, __source_row.
		name: "position", version: "position", key: key,
		value: flat(md("op", "u", "source_file", "mysql-bin.000003", "source_pos", 154, "source_row", 2)),
		want:  Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 3, B: 154, C: 2}, EventTime: recordTime},
	}, {
		// field:__name reads metadata; field:name a row column.
		name: "field metadata with lineage", version: "field:__source_ts_ms", lineage: "field:customer_id", key: key,
		value: flat(md("op", "u", "source_ts_ms", 1718454600123)),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: row, Version: compare.Version{A: 1718454600123},
			Lineage: compare.Version{A: 7}, EventTime: pgTime},
	}, {
		// Version 2 of the row schema: one more nullable column, a wider int.
		name: "evolved schema", key: key,
		value: f.encode(t, idFlatV2, func() map[string]any {
			r := flatOrder("paid", md("op", "u"))
			r["customer_id"] = goavro.Union("long", int64(7))
			r["coupon"] = goavro.Union("string", "SUMMER")
			return r
		}()),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: func() map[string]any {
			r := orderRow("paid")
			r["coupon"] = "SUMMER"
			return r
		}(), Version: offV, EventTime: recordTime},
	}, {
		name: "unknown op", key: key, value: flat(md("op", "x")), reason: ReasonUnknownOp, errHas: "__op",
	}, {
		name: "bad deleted", key: key, value: flat(md("deleted", "yes")), reason: ReasonBadValue, errHas: "__deleted",
	}, {
		name: "lsn missing", version: "lsn", key: key, value: flat(md("op", "u")), reason: ReasonMissingVersion, errHas: "__lsn",
	}, {
		name: "bad magic", key: key, value: []byte(`{"id":42}`), reason: ReasonBadMagic, errHas: "magic",
	}, {
		name: "unknown schema id", key: key, value: wire(idUnknown, 0), reason: ReasonUnknownSchemaID, errHas: "99",
	}, {
		name: "truncated", key: key, value: flat(md("op", "u"))[:12], reason: ReasonTruncated, errHas: "value",
	}, {
		// A value schema that is not a record.
		name: "not a record", key: key, value: f.encode(t, idKeyString, "x"), reason: ReasonUnknownSchema, errHas: "row record",
	}})
}
