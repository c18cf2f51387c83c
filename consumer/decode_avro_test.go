package consumer

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/schemas"
)

// runAvroCases runs table cases against decoders from mk. Each record is
// decoded twice: the first call fetches and compiles its schemas, the second
// finds them cached; both must agree.
func runAvroCases(t *testing.T, cases []decodeCase, defaultVersion string, mk func(v, l compare.VersionSpec) Decoder) {
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
			d := mk(version, lineage)
			for pass := range 2 {
				got, err := d.Decode(tc.key, tc.value, meta)
				checkDecode(t, "avro", pass, tc, got, err)
			}
		})
	}
}

func runDebeziumAvroCases(t *testing.T, f *avroFixture, cases []decodeCase) {
	t.Helper()
	runAvroCases(t, cases, "lsn", func(v, l compare.VersionSpec) Decoder { return NewDebeziumAvro(f.reg, v, l) })
}

// pgEnvelope is an orders envelope (schema version 1) at LSN 24023128.
func pgEnvelope(t *testing.T, f *avroFixture, op string, before, after map[string]any) []byte {
	t.Helper()
	return f.encode(t, idEnvV1, envelopeNative("pg.public.orders.Value", op, before, after, pgSourceAvro(pgLSN)))
}

// orderRow is orderV1 as decoded.
func orderRow(status string) map[string]any {
	return map[string]any{"id": num("42"), "customer_id": num("7"), "status": status, "amount": dec("1250", 2), "updated_at": nil}
}

func TestDebeziumAvroOps(t *testing.T) {
	f := newAvroFixture(t)
	key := f.encode(t, idKey, map[string]any{"id": int64(42)})
	k42 := map[string]any{"id": num("42")}
	runDebeziumAvroCases(t, f, []decodeCase{{
		// c is an upsert of after; version is source.lsn, event time source.ts_ms.
		name: "create", key: key, value: pgEnvelope(t, f, "c", nil, orderV1("new")),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: orderRow("new"), Version: lsnV, EventTime: pgTime},
	}, {
		// u takes after, never before.
		name: "update", key: key, value: pgEnvelope(t, f, "u", orderV1("new"), orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: orderRow("paid"), Version: lsnV, EventTime: pgTime},
	}, {
		// r, a snapshot read, is an upsert.
		name: "snapshot read", key: key, value: pgEnvelope(t, f, "r", nil, orderV1("new")),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: orderRow("new"), Version: lsnV, EventTime: pgTime},
	}, {
		// d is a delete of the before image.
		name: "delete", key: key, value: pgEnvelope(t, f, "d", orderV1("paid"), nil),
		want: Decoded{Op: compare.OpDelete, Key: k42, Row: orderRow("paid"), Version: lsnV, EventTime: pgTime},
	}, {
		// REPLICA IDENTITY NOTHING: a delete without before; the key says which row.
		name: "delete without before", key: key, value: pgEnvelope(t, f, "d", nil, nil),
		want: Decoded{Op: compare.OpDelete, Key: k42, Version: lsnV, EventTime: pgTime},
	}, {
		// A null value after a delete: compaction's tombstone, not a change.
		name: "tombstone", key: key, value: nil,
		want: Decoded{Tombstone: true},
	}, {
		// t (truncate) changes no single row: skipped, with its time.
		name: "truncate", value: pgEnvelope(t, f, "t", nil, nil),
		want: Decoded{Skip: SkipTruncate, EventTime: pgTime},
	}, {
		// m, a logical-decoding message, is not a row change.
		name: "message", value: pgEnvelope(t, f, "m", nil, nil),
		want: Decoded{Skip: SkipMessage, EventTime: pgTime},
	}, {
		// Avro enum and fixed columns: the symbol, and the bytes.
		name: "enum and fixed", key: key,
		value: f.encode(t, idEnumFixed, envelopeNative("pg.public.odd.Value", "c", nil, map[string]any{
			"id": int64(42), "mood": goavro.Union("pg.public.odd.Mood", "sad"), "hash": goavro.Union("pg.public.odd.Hash", []byte{0xbe, 0xef}),
		}, pgSourceAvro(pgLSN))),
		want: Decoded{Op: compare.OpUpsert, Key: k42, Row: map[string]any{"id": num("42"), "mood": "sad", "hash": []byte{0xbe, 0xef}},
			Version: lsnV, EventTime: pgTime},
	}})
}

func TestDebeziumAvroVersions(t *testing.T) {
	f := newAvroFixture(t)
	key := f.encode(t, idKey, map[string]any{"id": int64(42)})
	withUpdated := orderV1("paid")
	withUpdated["updated_at"] = goavro.Union("long", int64(1718454600123456))
	rowUpdated := orderRow("paid")
	rowUpdated["updated_at"] = utc("2024-06-15T12:30:00.123456Z")
	mysql := func(row map[string]any) []byte {
		src := map[string]any{"version": "2.7.0.Final", "connector": "mysql", "name": "my", "ts_ms": int64(1718454600123),
			"db": "shop", "table": goavro.Union("string", "orders"), "server_id": int64(1), "gtid": nil,
			"file": "mysql-bin.000003", "pos": int64(154), "row": int32(2), "thread": nil}
		return f.encode(t, idMySQL, envelopeNative("my.shop.orders.Value", "u", nil, row, src))
	}
	runDebeziumAvroCases(t, f, []decodeCase{{
		// position: binlog file number, pos, row (a gtid names a transaction).
		name: "position", version: "position", key: key, value: mysql(orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: orderRow("paid"),
			Version: compare.Version{A: 3, B: 154, C: 2}, EventTime: pgTime},
	}, {
		// field:<name> reads a row column; a MicroTimestamp is its instant in µs.
		name: "field timestamp", version: "field:updated_at", key: key, value: pgEnvelope(t, f, "u", nil, withUpdated),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: rowUpdated,
			Version: compare.Version{A: 1718454600123456}, EventTime: pgTime},
	}, {
		// field:<name> with an integer column, and a lineage field.
		name: "field int with lineage", version: "field:id", lineage: "field:customer_id", key: key, value: pgEnvelope(t, f, "u", nil, orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: orderRow("paid"),
			Version: compare.Version{A: 42}, Lineage: compare.Version{A: 7}, EventTime: pgTime},
	}, {
		// offset is the Kafka offset + 1.
		name: "offset", version: "offset", key: key, value: pgEnvelope(t, f, "u", nil, orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: orderRow("paid"), Version: offV, EventTime: pgTime},
	}, {
		// An absent lineage column only means the row does not say.
		name: "lineage absent", lineage: "field:_src_lsn", key: key, value: pgEnvelope(t, f, "u", nil, orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: map[string]any{"id": num("42")}, Row: orderRow("paid"), Version: lsnV, EventTime: pgTime},
	}, {
		// Incremental-snapshot rows have no LSN: version lsn cannot be read.
		name: "lsn missing", key: key,
		value:  f.encode(t, idEnvV1, envelopeNative("pg.public.orders.Value", "r", nil, orderV1("new"), pgSourceAvro(nil))),
		reason: ReasonMissingVersion, errHas: "source.lsn",
	}, {
		name: "position on postgres", version: "position", key: key, value: pgEnvelope(t, f, "u", nil, orderV1("paid")),
		reason: ReasonMissingVersion, errHas: "source.file",
	}})
}

// TestDebeziumAvroEvolution: records written before and after a schema
// change decode, each with its own writer schema: version 2 adds a nullable
// column and widens customer_id from int to long.
func TestDebeziumAvroEvolution(t *testing.T) {
	f := newAvroFixture(t)
	v2 := map[string]any{"id": int64(42), "customer_id": goavro.Union("long", int64(7)), "status": "paid",
		"amount": goavro.Union("bytes.decimal", ratOf(1250, 100)), "updated_at": nil, "coupon": goavro.Union("string", "SUMMER")}
	v2Null := map[string]any{"id": int64(42), "customer_id": goavro.Union("long", int64(7)), "status": "paid",
		"amount": goavro.Union("bytes.decimal", ratOf(1250, 100)), "updated_at": nil, "coupon": nil}
	withCoupon := orderRow("paid")
	withCoupon["coupon"] = "SUMMER"
	nullCoupon := orderRow("paid")
	nullCoupon["coupon"] = nil
	k := map[string]any{"id": num("42")}
	runDebeziumAvroCases(t, f, []decodeCase{{
		name: "version 1", key: []byte(`{"id":42}`), value: pgEnvelope(t, f, "u", nil, orderV1("paid")),
		want: Decoded{Op: compare.OpUpsert, Key: k, Row: orderRow("paid"), Version: lsnV, EventTime: pgTime},
	}, {
		name: "version 2", key: []byte(`{"id":42}`),
		value: f.encode(t, idEnvV2, envelopeNative("pg.public.orders.Value", "u", nil, v2, pgSourceAvro(pgLSN))),
		want:  Decoded{Op: compare.OpUpsert, Key: k, Row: withCoupon, Version: lsnV, EventTime: pgTime},
	}, {
		name: "version 2 null column", key: []byte(`{"id":42}`),
		value: f.encode(t, idEnvV2, envelopeNative("pg.public.orders.Value", "u", nil, v2Null, pgSourceAvro(pgLSN))),
		want:  Decoded{Op: compare.OpUpsert, Key: k, Row: nullCoupon, Version: lsnV, EventTime: pgTime},
	}})
	// One decoder meets both versions, interleaved.
	d := NewDebeziumAvro(f.reg, compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
	for i, v := range [][]byte{
		pgEnvelope(t, f, "u", nil, orderV1("paid")),
		f.encode(t, idEnvV2, envelopeNative("pg.public.orders.Value", "u", nil, v2, pgSourceAvro(pgLSN))),
		pgEnvelope(t, f, "u", nil, orderV1("paid")),
	} {
		got, err := d.Decode(nil, v, meta)
		if err != nil || got.Row["customer_id"] != num("7") || (i == 1) != (got.Row["coupon"] == "SUMMER") {
			t.Fatalf("record %d: %s, %v", i, showDecoded(got), err)
		}
	}
}

func TestDebeziumAvroKeys(t *testing.T) {
	f := newAvroFixture(t)
	value := pgEnvelope(t, f, "u", nil, orderV1("paid"))
	row := orderRow("paid")
	up := func(key map[string]any) Decoded {
		return Decoded{Op: compare.OpUpsert, Key: key, Row: row, Version: lsnV, EventTime: pgTime}
	}
	runDebeziumAvroCases(t, f, []decodeCase{{
		name: "avro key", key: f.encode(t, idKey, map[string]any{"id": int64(42)}), value: value,
		want: up(map[string]any{"id": num("42")}),
	}, {
		name: "avro composite key", key: f.encode(t, idComposite, map[string]any{"tenant_id": "acme", "id": int64(-1)}), value: value,
		want: up(map[string]any{"tenant_id": "acme", "id": num("-1")}),
	}, {
		name: "json key", key: []byte(`{"id":42}`), value: value,
		want: up(map[string]any{"id": num("42")}),
	}, {
		name: "json key with schema", key: []byte(`{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"pg.public.orders.Key"},"payload":{"id":42}}`),
		value: value, want: up(map[string]any{"id": num("42")}),
	}, {
		// StringConverter text names no column: the key fields come from the row.
		name: "plain string key", key: []byte(`Struct{id=42}`), value: value, want: up(nil),
	}, {
		// An Avro primitive key names no column either.
		name: "avro string key", key: f.encode(t, idKeyString, "42"), value: value, want: up(nil),
	}, {
		name: "null key", value: value, want: up(nil),
	}, {
		name: "avro key unknown id", key: wire(idUnknown, 0x54), value: value,
		reason: ReasonUnknownSchemaID, errHas: "key: schema id 99",
	}, {
		name: "avro key truncated", key: wire(idComposite, 0x08, 'a', 'c'), value: value,
		reason: ReasonTruncated, errHas: "key",
	}, {
		name: "avro key header cut", key: []byte{0, 0, 1}, value: value,
		reason: ReasonBadMagic, errHas: "key",
	}, {
		name: "json key malformed", key: []byte(`{"id":`), value: value,
		reason: ReasonMalformed, errHas: "key",
	}})
}

func TestDebeziumAvroBadInput(t *testing.T) {
	f := newAvroFixture(t)
	key := []byte(`{"id":42}`)
	good := pgEnvelope(t, f, "u", nil, orderV1("paid"))
	// A union index past the members, where "before" starts.
	corrupt := append(wire(idEnvV1), 0x08)
	deep := wire(idList)
	for range 100 {
		deep = append(deep, 0x02) // next: the Node member
	}
	deep = append(deep, 0x00)
	withOp := func(op string) []byte { return pgEnvelope(t, f, op, nil, orderV1("paid")) }
	badZoned := logicalValue(t, f, "zoned", "yesterday")
	badTime := logicalValue(t, f, "time_us", int64(1<<62))
	runDebeziumAvroCases(t, f, []decodeCase{{
		name: "json value", key: key, value: []byte(`{"op":"c"}`), reason: ReasonBadMagic, errHas: "magic byte 0x7b",
	}, {
		// Confluent's newer framing (magic 1 and a GUID) is not read.
		name: "magic 1", key: key, value: append([]byte{1}, good[1:]...), reason: ReasonBadMagic, errHas: "magic byte 0x01",
	}, {
		name: "header cut", key: key, value: []byte{0, 0, 0}, reason: ReasonBadMagic, errHas: "3 bytes",
	}, {
		name: "unknown schema id", key: key, value: wire(idUnknown, 0), reason: ReasonUnknownSchemaID, errHas: "schema id 99",
	}, {
		name: "truncated", key: key, value: good[:len(good)-3], reason: ReasonTruncated, errHas: "ends early",
	}, {
		name: "header only", key: key, value: wire(idEnvV1), reason: ReasonTruncated, errHas: "schema id 2",
	}, {
		name: "trailing bytes", key: key, value: append(append([]byte{}, good...), 0), reason: ReasonMalformed, errHas: "1 bytes left",
	}, {
		name: "corrupt union index", key: key, value: corrupt, reason: ReasonMalformed, errHas: "union index 4",
	}, {
		// A recursive schema nested past any Debezium shape: stopped before goavro recurses.
		name: "too deep", key: key, value: deep, reason: ReasonMalformed, errHas: "nested deeper",
	}, {
		// An array header claiming more items than bytes left: no allocation for them.
		name: "huge array count", key: key, value: append(wire(idNulls, 0x02, 'c'), 0xfe, 0xff, 0xff, 0xff, 0x0f),
		reason: ReasonMalformed, errHas: "zero-size",
	}, {
		name: "unknown op", key: key, value: withOp("x"), reason: ReasonUnknownOp, errHas: `"x"`,
	}, {
		name: "empty op", key: key, value: withOp(""), reason: ReasonMalformed, errHas: "missing",
	}, {
		name: "create without after", key: key, value: pgEnvelope(t, f, "c", nil, nil), reason: ReasonMalformed, errHas: "after",
	}, {
		// A value schema that is no envelope (the key schema).
		name: "not an envelope", key: key, value: f.encode(t, idKey, map[string]any{"id": int64(1)}),
		reason: ReasonUnknownSchema, errHas: "envelope",
	}, {
		name: "protobuf schema", key: key, value: wire(idProtobuf, 0), reason: ReasonUnknownSchema, errHas: "PROTOBUF",
	}, {
		name: "schema references", key: key, value: wire(idReferences, 0), reason: ReasonUnknownSchema, errHas: "references",
	}, {
		name: "bad zoned timestamp", key: key, value: badZoned, reason: ReasonBadValue, errHas: `"zoned"`,
	}, {
		name: "time overflow", key: key, value: badTime, reason: ReasonOversized, errHas: `"time_us"`,
	}, {
		// Avro strings are UTF-8 by the spec; decoders do not check it.
		name: "invalid UTF-8 string", key: key, value: pgEnvelope(t, f, "u", nil, orderV1("pa\xffd")),
		reason: ReasonInvalidUTF8, errHas: `"status"`,
	}})
}

// logicalValue is the idLogical row with one column's Avro value replaced.
func logicalValue(t *testing.T, f *avroFixture, col string, native any) []byte {
	t.Helper()
	v, _ := logicalRecords(t, f, "c", map[string][2]any{col: {native, "null"}})
	return v
}

// TestDebeziumAvroRegistryUnavailable: a registry that cannot answer is an
// *UnavailableError, not a DecodeError, and the next call asks again.
func TestDebeziumAvroRegistryUnavailable(t *testing.T) {
	f := newAvroFixture(t)
	value := pgEnvelope(t, f, "u", nil, orderV1("paid"))
	var down atomic.Bool
	down.Store(true)
	f.fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	d := NewDebeziumAvro(f.reg, compare.VersionSpec{Kind: compare.VersionLSN}, compare.VersionSpec{})
	_, err := d.Decode(nil, value, meta)
	var ue *UnavailableError
	var de *DecodeError
	if !errors.As(err, &ue) || errors.As(err, &de) || !errors.Is(err, schemas.ErrRegistryUnavailable) {
		t.Fatalf("registry down: %v (%T), want an *UnavailableError", err, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := d.DecodeContext(ctx, nil, value, meta); !errors.As(err, &ue) {
		t.Fatalf("ctx done: %v, want an *UnavailableError", err)
	}
	down.Store(false)
	got, err := d.Decode(nil, value, meta)
	if err != nil || got.Row["status"] != "paid" {
		t.Fatalf("registry back: %s, %v", showDecoded(got), err)
	}
}
