package consumer

import (
	"encoding/base64"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/recon-dev/recon/compare"
)

func ratOf(a, b int64) *big.Rat { return big.NewRat(a, b) }

// logicalCase is one column in both forms: as AvroConverter writes it and as
// JsonConverter (with schemas) writes it. Both must decode to want.
type logicalCase struct {
	name     string // column name
	avro     string // Avro field type
	optional bool   // ["null", avro]
	member   string // goavro's union member name, when optional
	native   any    // the value as goavro takes it
	json     string // JsonConverter column schema
	jsonVal  string // JsonConverter value
	want     any
}

var logicalCases = []logicalCase{{
	// Decimal: bytes + scale, goavro gives *big.Rat; 1234.50 is AeI6 in JSON.
	name: "dec_amount", avro: avDecimal2, optional: true, member: "bytes.decimal", native: ratOf(123450, 100),
	json: col("dec_amount", "bytes", nameDecimal, "scale", "2", "connect.decimal.precision", "10"), jsonVal: `"AeI6"`,
	want: dec("123450", 2),
}, {
	name: "dec_negative", avro: avDecimal2, optional: true, member: "bytes.decimal", native: ratOf(-123450, 100),
	json: col("dec_negative", "bytes", nameDecimal, "scale", "2", "connect.decimal.precision", "10"), jsonVal: `"/h3G"`,
	want: dec("-123450", 2),
}, {
	// VariableScaleDecimal: a record {scale, value}; 10.2345 is AY/J at scale 4.
	name: "var_decimal", avro: avVarDecimal, optional: true, member: "io.debezium.data.VariableScaleDecimal",
	native: map[string]any{"scale": int32(4), "value": []byte{0x01, 0x8f, 0xc9}},
	json: `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],` +
		`"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"var_decimal"}`,
	jsonVal: `{"scale":4,"value":"AY/J"}`, want: dec("102345", 4),
}, {
	// io.debezium.time.Date: days since the epoch, a raw int. Required (no union).
	name: "date", avro: avConnect("int", nameDate), native: int32(19889),
	json: col("date", "int32", nameDate), jsonVal: "19889", want: compare.Date(19889),
}, {
	name: "time_ms", avro: avConnect("int", nameTime), optional: true, member: "int", native: int32(45296123),
	json: col("time_ms", "int32", nameTime), jsonVal: "45296123", want: compare.TimeOfDay(45296123 * time.Millisecond),
}, {
	name: "time_us", avro: avConnect("long", nameMicroTime), optional: true, member: "long", native: int64(45296123456),
	json: col("time_us", "int64", nameMicroTime), jsonVal: "45296123456", want: compare.TimeOfDay(45296123456 * time.Microsecond),
}, {
	name: "time_ns", avro: avConnect("long", nameNanoTime), optional: true, member: "long", native: int64(45296123456789),
	json: col("time_ns", "int64", nameNanoTime), jsonVal: "45296123456789", want: compare.TimeOfDay(45296123456789),
}, {
	name: "ts_ms", avro: avConnect("long", nameTimestamp), optional: true, member: "long", native: int64(1718454600123),
	json: col("ts_ms", "int64", nameTimestamp), jsonVal: "1718454600123", want: utc("2024-06-15T12:30:00.123Z"),
}, {
	// µs and ns survive: never through a float64.
	name: "ts_us", avro: avMicroTS, optional: true, member: "long", native: int64(1718454600123456),
	json: col("ts_us", "int64", nameMicroTimestamp), jsonVal: "1718454600123456", want: utc("2024-06-15T12:30:00.123456Z"),
}, {
	name: "ts_ns", avro: avConnect("long", nameNanoTimestamp), optional: true, member: "long", native: int64(1718454600123456789),
	json: col("ts_ns", "int64", nameNanoTimestamp), jsonVal: "1718454600123456789", want: utc("2024-06-15T12:30:00.123456789Z"),
}, {
	// ZonedTimestamp: ISO text with 0-9 fraction digits, parsed, not compared as text.
	name: "zoned", avro: avConnect("string", nameZonedTimestamp), optional: true, member: "string", native: "2024-06-15T12:30:00.1234Z",
	json: col("zoned", "string", nameZonedTimestamp), jsonVal: `"2024-06-15T12:30:00.1234Z"`, want: utc("2024-06-15T12:30:00.1234Z"),
}, {
	// Postgres infinity has no instant.
	name: "zoned_infinity", avro: avConnect("string", nameZonedTimestamp), optional: true, member: "string", native: "infinity",
	json: col("zoned_infinity", "string", nameZonedTimestamp), jsonVal: `"infinity"`, want: "infinity",
}, {
	name: "uuid", avro: avConnect("string", "io.debezium.data.Uuid"), optional: true, member: "string", native: "5f0c6a3e-0b8e-4e8f-9a52-3c2b8f6d1e10",
	json: col("uuid", "string", "io.debezium.data.Uuid"), jsonVal: `"5f0c6a3e-0b8e-4e8f-9a52-3c2b8f6d1e10"`, want: "5f0c6a3e-0b8e-4e8f-9a52-3c2b8f6d1e10",
}, {
	// Json stays its text; compare canonicalizes it where configured.
	name: "doc", avro: avConnect("string", "io.debezium.data.Json"), optional: true, member: "string", native: `{"b":[1,2],"a":null}`,
	json: col("doc", "string", "io.debezium.data.Json"), jsonVal: `"{\"b\":[1,2],\"a\":null}"`, want: `{"b":[1,2],"a":null}`,
}, {
	name: "enum_status", avro: `{"type":"string","connect.version":1,"connect.parameters":{"allowed":"new,paid"},"connect.name":"io.debezium.data.Enum"}`,
	optional: true, member: "string", native: "paid",
	json: col("enum_status", "string", "io.debezium.data.Enum", "allowed", "new,paid"), jsonVal: `"paid"`, want: "paid",
}, {
	// Connect's own Date, Time and Timestamp carry an Avro logicalType, which goavro decodes.
	name: "c_date", avro: `{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}`,
	optional: true, member: "int.date", native: time.Date(2024, 6, 15, 0, 0, 0, 0, time.UTC),
	json: col("c_date", "int32", nameConnectDate), jsonVal: "19889", want: compare.Date(19889),
}, {
	name: "c_time", avro: `{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Time","logicalType":"time-millis"}`,
	optional: true, member: "int.time-millis", native: 45296123 * time.Millisecond,
	json: col("c_time", "int32", nameConnectTime), jsonVal: "45296123", want: compare.TimeOfDay(45296123 * time.Millisecond),
}, {
	name: "c_ts", avro: `{"type":"long","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"}`,
	optional: true, member: "long.timestamp-millis", native: time.UnixMilli(1718454600123),
	json: col("c_ts", "int64", nameConnectTS), jsonVal: "1718454600123", want: utc("2024-06-15T12:30:00.123Z"),
}, {
	// A bigint at full precision.
	name: "big", avro: avLong, optional: true, member: "long", native: int64(9223372036854775807),
	json: col("big", "int64", ""), jsonVal: "9223372036854775807", want: num("9223372036854775807"),
}, {
	name: "neg_int", avro: avInt, optional: true, member: "int", native: int32(-5),
	json: col("neg_int", "int32", ""), jsonVal: "-5", want: num("-5"),
}, {
	// Doubles in Java's text, as JsonConverter writes them.
	name: "ratio", avro: `"double"`, optional: true, member: "double", native: 1.5,
	json: col("ratio", "float64", ""), jsonVal: "1.5", want: num("1.5"),
}, {
	name: "whole_double", avro: `"double"`, optional: true, member: "double", native: 2.0,
	json: col("whole_double", "float64", ""), jsonVal: "2.0", want: num("2.0"),
}, {
	name: "huge_double", avro: `"double"`, optional: true, member: "double", native: 1e20,
	json: col("huge_double", "float64", ""), jsonVal: "1.0E20", want: num("1.0E20"),
}, {
	// A float32 0.1 is 0.1, not 0.10000000149011612.
	name: "score", avro: `"float"`, optional: true, member: "float", native: float32(0.1),
	json: col("score", "float32", ""), jsonVal: "0.1", want: num("0.1"),
}, {
	name: "flag", avro: `"boolean"`, optional: true, member: "boolean", native: true,
	json: col("flag", "boolean", ""), jsonVal: "true", want: true,
}, {
	name: "blob", avro: `"bytes"`, optional: true, member: "bytes", native: []byte{0, 1, 2},
	json: col("blob", "bytes", ""), jsonVal: `"AAEC"`, want: []byte{0, 1, 2},
}, {
	name: "tags", avro: `{"type":"array","items":"string"}`, optional: true, member: "array", native: []any{"a", "b"},
	json: `{"type":"array","items":{"type":"string","optional":false},"optional":true,"field":"tags"}`, jsonVal: `["a","b"]`,
	want: []any{"a", "b"},
}, {
	// Array elements that are optional are unions too.
	name: "ints", avro: `{"type":"array","items":["null","long"]}`, optional: true, member: "array",
	native:  []any{goavro.Union("long", int64(1)), nil},
	json:    `{"type":"array","items":{"type":"int64","optional":true},"optional":true,"field":"ints"}`,
	jsonVal: `[1,null]`, want: []any{num("1"), nil},
}, {
	name: "attrs", avro: `{"type":"map","values":["null","string"]}`, optional: true, member: "map",
	native:  map[string]any{"k": goavro.Union("string", "v")},
	json:    `{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":true,"field":"attrs"}`,
	jsonVal: `{"k":"v"}`, want: map[string]any{"k": "v"},
}, {
	// A struct column: hashed as JSON text, so its doubles must read as JsonConverter's.
	name: "point", avro: `{"type":"record","name":"Point","namespace":"io.debezium.data.geometry","fields":[{"name":"x","type":"double"},{"name":"y","type":"double"},` +
		`{"name":"wkb","type":["null","bytes"],"default":null},{"name":"srid","type":["null","int"],"default":null}],` +
		`"connect.doc":"Geometry (POINT)","connect.version":1,"connect.name":"io.debezium.data.geometry.Point"}`,
	optional: true, member: "io.debezium.data.geometry.Point",
	native: map[string]any{"x": 1.0, "y": 2.5, "wkb": nil, "srid": goavro.Union("int", int32(4326))},
	json: `{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},` +
		`{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],` +
		`"optional":true,"name":"io.debezium.data.geometry.Point","version":1,"field":"point"}`,
	jsonVal: `{"x":1.0,"y":2.5,"wkb":null,"srid":4326}`,
	want:    map[string]any{"x": num("1.0"), "y": num("2.5"), "wkb": nil, "srid": num("4326")},
}, {
	name: "note", avro: avString, optional: true, native: nil,
	json: col("note", "string", ""), jsonVal: "null", want: nil,
}}

// logicalColumns are the Avro fields of schema idLogical: id, then every case.
func logicalColumns() []string {
	cols := []string{avCol("id", avLong, false)}
	for _, c := range logicalCases {
		cols = append(cols, avCol(c.name, c.avro, c.optional))
	}
	return cols
}

// logicalRecords is one row holding every case, as debezium-avro and as
// debezium-json with the schema wrapper; values overrides case values by
// column (for both forms: the Avro native, then the JSON text).
func logicalRecords(t *testing.T, f *avroFixture, op string, values map[string][2]any) (avroValue, jsonValue []byte) {
	t.Helper()
	row := map[string]any{"id": int64(1)}
	jsonCols := []string{`{"type":"int64","optional":false,"field":"id"}`}
	jsonVals := []string{`"id":1`}
	for _, c := range logicalCases {
		native, text := c.native, c.jsonVal
		if v, ok := values[c.name]; ok {
			native, text = v[0], v[1].(string)
		}
		if c.optional && native != nil {
			native = goavro.Union(c.member, native)
		}
		row[c.name] = native
		jsonCols = append(jsonCols, c.json)
		jsonVals = append(jsonVals, `"`+c.name+`":`+text)
	}
	avroValue = f.encode(t, idLogical, envelopeNative("pg.public.types.Value", op, nil, row, pgSourceAvro(pgLSN)))
	jsonValue = wrap(envSchema(cols(jsonCols...)), pgEvent(op, "null", "{"+strings.Join(jsonVals, ",")+"}"))
	return avroValue, jsonValue
}

// TestDebeziumAvroLogicalTypes: every Connect and Debezium logical type,
// optional (a union) or not, decodes from Avro to what debezium-json with the
// schema wrapper gives for the same column.
func TestDebeziumAvroLogicalTypes(t *testing.T) {
	f := newAvroFixture(t)
	lsn := compare.VersionSpec{Kind: compare.VersionLSN}
	avroValue, jsonValue := logicalRecords(t, f, "c", nil)
	key := []byte(`{"id":1}`)
	fromAvro, err := NewDebeziumAvro(f.reg, lsn, compare.VersionSpec{}).Decode(key, avroValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := NewDebeziumJSON(lsn, compare.VersionSpec{}).Decode(key, jsonValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range logicalCases {
		t.Run(c.name, func(t *testing.T) {
			if got := fromAvro.Row[c.name]; !sameValue(got, c.want) {
				t.Errorf("avro: %s, want %s", show(got), show(c.want))
			}
			if got := fromJSON.Row[c.name]; !sameValue(got, c.want) {
				t.Errorf("json: %s, want %s", show(got), show(c.want))
			}
		})
	}
	if !sameDecoded(fromAvro, fromJSON) {
		t.Errorf("decoded differently:\navro %s\njson %s", showDecoded(fromAvro), showDecoded(fromJSON))
	}
	if err := noFloats(fromAvro.Row); err != nil {
		t.Errorf("avro row: %v", err)
	}
}

// TestDebeziumAvroMatchesJSONDigest: the same logical row as debezium-avro,
// as debezium-json with the schema wrapper and as flat-avro normalizes to
// the same digest.
func TestDebeziumAvroMatchesJSONDigest(t *testing.T) {
	f := newAvroFixture(t)
	lsn := compare.VersionSpec{Kind: compare.VersionLSN}
	rules, err := compare.NewRules([]string{"id"}, nil, nil, map[string]string{"dec_amount": "decimal(2)"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := compare.NewHasher([]byte("cross-format-test-key"))
	digest := func(name string, d Decoded) compare.Digest {
		t.Helper()
		row, unchanged, err := rules.Normalize(d.Row)
		if err != nil || len(unchanged) > 0 {
			t.Fatalf("%s: normalize: %v, unchanged %v", name, err, unchanged)
		}
		return h.RowDigest(row)
	}
	avroValue, jsonValue := logicalRecords(t, f, "u", nil)
	fromAvro, err := NewDebeziumAvro(f.reg, lsn, compare.VersionSpec{}).Decode(f.encode(t, idKey, map[string]any{"id": int64(1)}), avroValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := NewDebeziumJSON(lsn, compare.VersionSpec{}).Decode([]byte(`{"id":1}`), jsonValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	a, j := digest("avro", fromAvro), digest("json", fromJSON)
	if a != j || a.IsZero() {
		t.Fatalf("digests differ: avro %s, json %s\navro %s\njson %s", a, j, showDecoded(fromAvro), showDecoded(fromJSON))
	}
	// Keys: an Avro key struct and a JSON one give one canonical key.
	ka, err := rules.Key(fromAvro.Key)
	if err != nil {
		t.Fatal(err)
	}
	kj, err := rules.Key(fromJSON.Key)
	if err != nil || ka.String() != kj.String() {
		t.Fatalf("keys differ: avro %v, json %v (%v)", ka, kj, err)
	}

	// The orders row as an envelope and as an unwrapped flat record.
	env, err := NewDebeziumAvro(f.reg, lsn, compare.VersionSpec{}).Decode(nil,
		f.encode(t, idEnvV1, envelopeNative("pg.public.orders.Value", "u", nil, orderV1("paid"), pgSourceAvro(pgLSN))), meta)
	if err != nil {
		t.Fatal(err)
	}
	flat, err := NewFlatAvro(f.reg, lsn, compare.VersionSpec{}).Decode(nil, f.encode(t, idFlatV1, flatOrder("paid", map[string]any{
		"op": goavro.Union("string", "u"), "lsn": goavro.Union("long", int64(24023128)),
		"source_ts_ms": goavro.Union("long", int64(1718454600123)), "deleted": goavro.Union("string", "false"),
	})), meta)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecoded(env, flat) {
		t.Fatalf("decoded differently:\nenvelope %s\nflat     %s", showDecoded(env), showDecoded(flat))
	}
	if a, b := digest("envelope", env), digest("flat", flat); a != b {
		t.Fatalf("digests differ: envelope %s, flat %s", a, b)
	}
}

// TestDebeziumAvroToast: Debezium's placeholder for an unchanged TOAST
// column, in each shape the connector sends per column type, means
// "unchanged" in Avro as in JSON.
func TestDebeziumAvroToast(t *testing.T) {
	f := newAvroFixture(t)
	const ph = compare.UnavailablePlaceholder
	phB64 := base64.StdEncoding.EncodeToString([]byte(ph))
	wkb, err := base64.StdEncoding.DecodeString(placeholderGeometryWKB)
	if err != nil {
		t.Fatal(err)
	}
	phInts, phIntsJSON := make([]any, len(ph)), make([]string, len(ph))
	for i := range len(ph) {
		phInts[i] = goavro.Union("long", int64(ph[i]))
		phIntsJSON[i] = strconv.Itoa(int(ph[i]))
	}
	unscaled := new(big.Int).SetBytes([]byte(ph))
	values := map[string][2]any{
		"enum_status": {ph, `"` + ph + `"`},
		"zoned":       {ph, `"` + ph + `"`},
		"doc":         {ph, `"` + ph + `"`},
		"blob":        {[]byte(ph), `"` + phB64 + `"`},
		"dec_amount":  {new(big.Rat).SetFrac(unscaled, big.NewInt(100)), `"` + phB64 + `"`},
		"tags":        {[]any{ph}, `["` + ph + `"]`},
		"ints":        {phInts, "[" + strings.Join(phIntsJSON, ",") + "]"},
		"attrs":       {map[string]any{ph: goavro.Union("string", ph)}, `{"` + ph + `":"` + ph + `"}`},
		"point": {map[string]any{"x": 0.0, "y": 0.0, "wkb": goavro.Union("bytes", wkb), "srid": goavro.Union("int", int32(4326))},
			`{"x":0.0,"y":0.0,"wkb":"` + placeholderGeometryWKB + `","srid":4326}`},
	}
	avroValue, jsonValue := logicalRecords(t, f, "u", values)
	lsn := compare.VersionSpec{Kind: compare.VersionLSN}
	fromAvro, err := NewDebeziumAvro(f.reg, lsn, compare.VersionSpec{}).Decode(nil, avroValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := NewDebeziumJSON(lsn, compare.VersionSpec{}).Decode(nil, jsonValue, meta)
	if err != nil {
		t.Fatal(err)
	}
	for col := range values {
		if _, ok := fromAvro.Row[col].(compare.Unavailable); !ok {
			t.Errorf("avro %s = %s, want unavailable", col, show(fromAvro.Row[col]))
		}
		if _, ok := fromJSON.Row[col].(compare.Unavailable); !ok {
			t.Errorf("json %s = %s, want unavailable", col, show(fromJSON.Row[col]))
		}
	}
	if !sameDecoded(fromAvro, fromJSON) {
		t.Errorf("decoded differently:\navro %s\njson %s", showDecoded(fromAvro), showDecoded(fromJSON))
	}
}
