package consumer

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/recon-dev/recon/compare"
)

// TestDecodeLogicalTypes decodes one column of each logical type through the
// schema wrapper. Expected values are the worked examples of cdc-formats.md §2
// where it has one.
func TestDecodeLogicalTypes(t *testing.T) {
	type lt struct {
		name   string
		column string // the column schema
		value  string // the JSON value in after
		want   any
	}
	cases := []lt{
		// 1234.50 at scale 2: unscaled 123450 = 0x01E23A = "AeI6".
		{"decimal", col("v", "bytes", nameDecimal, "scale", "2", "connect.decimal.precision", "10"), `"AeI6"`, dec("123450", 2)},
		// -1234.50: two's complement FE 1D C6 = "/h3G".
		{"negative decimal", col("v", "bytes", nameDecimal, "scale", "2"), `"/h3G"`, dec("-123450", 2)},
		// 10.2345 at scale 4 is 0x018FC9 = "AY/J" (not the "D3J5" of Kafka's javadoc).
		{"decimal scale 4", col("v", "bytes", nameDecimal, "scale", "4"), `"AY/J"`, dec("102345", 4)},
		// No bytes is the unscaled integer 0.
		{"empty decimal", col("v", "bytes", nameDecimal, "scale", "2"), `""`, dec("0", 2)},
		// 0x80 alone is -128: the sign bit of the first byte decides.
		{"decimal sign byte", col("v", "bytes", nameDecimal, "scale", "0"), `"gA=="`, dec("-128", 0)},
		// decimal.format=NUMERIC: 1234.5 rescaled to the column's scale 2.
		{"numeric decimal", col("v", "bytes", nameDecimal, "scale", "2"), `1234.5`, dec("123450", 2)},
		// An exponent is still exact: 1.2345E+3 = 1234.50.
		{"numeric decimal exponent", col("v", "bytes", nameDecimal, "scale", "2"), `1.2345E+3`, dec("123450", 2)},
		// Extra zeros past the scale lose nothing.
		{"numeric decimal trailing zeros", col("v", "bytes", nameDecimal, "scale", "2"), `-1234.5000`, dec("-123450", 2)},
		// PG NUMERIC without a scale: the scale travels with the value.
		{"variable scale decimal", col("v", "struct", nameVarScaleDecimal), `{"scale":3,"value":"AeI6"}`, dec("123450", 3)},
		// 19889 days after 1970-01-01 is 2024-06-15.
		{"debezium date", col("v", "int32", nameDate), `19889`, compare.Date(19889)},
		{"connect date", col("v", "int32", nameConnectDate), `19889`, compare.Date(19889)},
		// 45000123 ms past midnight is 12:30:00.123.
		{"debezium time", col("v", "int32", nameTime), `45000123`, compare.TimeOfDay(12*time.Hour + 30*time.Minute + 123*time.Millisecond)},
		{"connect time", col("v", "int32", nameConnectTime), `45000123`, compare.TimeOfDay(12*time.Hour + 30*time.Minute + 123*time.Millisecond)},
		// MicroTime is µs: 12:30:00.123456.
		{"micro time", col("v", "int64", nameMicroTime), `45000123456`, compare.TimeOfDay(12*time.Hour + 30*time.Minute + 123456*time.Microsecond)},
		// NanoTime is ns.
		{"nano time", col("v", "int64", nameNanoTime), `45000123456789`, compare.TimeOfDay(12*time.Hour + 30*time.Minute + 123456789*time.Nanosecond)},
		// MySQL TIME can be negative (MicroTime -01:00:00).
		{"negative micro time", col("v", "int64", nameMicroTime), `-3600000000`, compare.TimeOfDay(-time.Hour)},
		// Timestamp is epoch ms.
		{"debezium timestamp", col("v", "int64", nameTimestamp), `1718454600123`, utc("2024-06-15T12:30:00.123Z")},
		{"connect timestamp", col("v", "int64", nameConnectTS), `1718454600123`, utc("2024-06-15T12:30:00.123Z")},
		// The worked example: 1718454600123456 µs = 2024-06-15T12:30:00.123456Z.
		{"micro timestamp", col("v", "int64", nameMicroTimestamp), `1718454600123456`, utc("2024-06-15T12:30:00.123456Z")},
		// ns keeps all 19 digits; a float64 would round the last ones.
		{"nano timestamp", col("v", "int64", nameNanoTimestamp), `1718454600123456789`, utc("2024-06-15T12:30:00.123456789Z")},
		// Before 1970 is negative.
		{"timestamp before epoch", col("v", "int64", nameMicroTimestamp), `-1000000`, utc("1969-12-31T23:59:59Z")},
		// ZonedTimestamp: 4 fraction digits, Z.
		{"zoned timestamp", col("v", "string", nameZonedTimestamp), `"2024-06-15T12:30:00.1234Z"`, utc("2024-06-15T12:30:00.1234Z")},
		// An offset is applied, giving the same instant in UTC.
		{"zoned timestamp offset", col("v", "string", nameZonedTimestamp), `"2024-06-15T14:30:00.1234+02:00"`, utc("2024-06-15T12:30:00.1234Z")},
		// No fraction at all is valid ISO-8601.
		{"zoned timestamp no fraction", col("v", "string", nameZonedTimestamp), `"2024-06-15T12:30:00Z"`, utc("2024-06-15T12:30:00Z")},
		// Nine fraction digits.
		{"zoned timestamp nanos", col("v", "string", nameZonedTimestamp), `"2024-06-15T12:30:00.123456789Z"`, utc("2024-06-15T12:30:00.123456789Z")},
		// PG 'infinity' has no instant: left for normalization to judge.
		{"zoned infinity", col("v", "string", nameZonedTimestamp), `"infinity"`, "infinity"},
		// Plain bytes are base64 on the wire.
		{"bytes", col("v", "bytes", ""), `"iVBORw0KGgo="`, []byte("\x89PNG\r\n\x1a\n")},
		// Null stays null whatever the type.
		{"null decimal", col("v", "bytes", nameDecimal, "scale", "2"), `null`, nil},
		// Untyped columns are left as JSON decoded them.
		{"plain string", col("v", "string", ""), `"paid"`, "paid"},
		{"plain int64", col("v", "int64", ""), `9223372036854775807`, num("9223372036854775807")},
		// Enum and Json are strings with a name recon leaves alone.
		{"json column", col("v", "string", "io.debezium.data.Json"), `"{\"a\":1}"`, `{"a":1}`},
		// Nested: an array of timestamps converts element by element.
		{"array of timestamps", `{"type":"array","items":{"type":"int64","name":"` + nameMicroTimestamp + `"},"optional":true,"field":"v"}`,
			`[0,1718454600123456]`, []any{utc("1970-01-01T00:00:00Z"), utc("2024-06-15T12:30:00.123456Z")}},
		// Geometry is a struct whose wkb is plain bytes.
		{"geometry", `{"type":"struct","fields":[{"type":"bytes","field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geometry","field":"v"}`,
			`{"wkb":"AQE=","srid":4326}`, map[string]any{"wkb": []byte{1, 1}, "srid": num("4326")}},
		// A Connect map with string keys is an object; its values convert.
		{"map of dates", `{"type":"map","keys":{"type":"string"},"values":{"type":"int32","name":"` + nameDate + `"},"optional":true,"field":"v"}`,
			`{"ship":19889}`, map[string]any{"ship": compare.Date(19889)}},
		// With other keys it is an array of pairs.
		{"map with int keys", `{"type":"map","keys":{"type":"int32"},"values":{"type":"int32","name":"` + nameDate + `"},"optional":true,"field":"v"}`,
			`[[1,19889]]`, []any{[]any{num("1"), compare.Date(19889)}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			value := wrap(envSchema(cols(col("id", "int64", ""), tc.column)), pgEvent("c", "null", `{"id":1,"v":`+tc.value+`}`))
			want := Decoded{Op: compare.OpUpsert, Row: map[string]any{"id": num("1"), "v": tc.want}, Version: lsnV, EventTime: pgTime}
			runDecodeCases(t, []decodeCase{{name: "wrapped", value: value, want: want}})
		})
	}
}

// TestDecodeUnwrappedStaysRaw: without the wrapper nothing says a number is a
// timestamp or a string is base64, so values stay as JSON decoded them.
func TestDecodeUnwrappedStaysRaw(t *testing.T) {
	runDecodeCases(t, []decodeCase{{
		name:  "raw values",
		value: []byte(pgEvent("c", "null", `{"id":9223372036854775807,"amount":"AeI6","at":1718454600123456,"zoned":"2024-06-15T12:30:00.1234Z","ok":true,"tags":["a"],"meta":{"n":1.5}}`)),
		want: Decoded{Op: compare.OpUpsert, Version: lsnV, EventTime: pgTime, Row: map[string]any{
			"id": num("9223372036854775807"), "amount": "AeI6", "at": num("1718454600123456"),
			"zoned": "2024-06-15T12:30:00.1234Z", "ok": true, "tags": []any{"a"}, "meta": map[string]any{"n": num("1.5")},
		}},
	}})
}

// TestDecodeToast: an unchanged TOAST column means "keep the previous value",
// in every representation Debezium's Postgres connector gives it.
func TestDecodeToast(t *testing.T) {
	ph := compare.UnavailablePlaceholder
	u := compare.Unavailable{}
	ints := ""
	for i, b := range []byte(ph) {
		if i > 0 {
			ints += ","
		}
		ints += fmt.Sprint(b)
	}
	unwrapped := pgEvent("u", "null", `{"id":1,"text":"`+ph+`","blob":"`+placeholderBase64+`","tags":["`+ph+`"],"ids":[`+ints+`],`+
		`"uuids":["`+placeholderUUID+`"],"kv":{"`+ph+`":"`+ph+`"},"kvjson":"{\"`+ph+`\":\"`+ph+`\"}","geo":{"wkb":"`+placeholderGeometryWKB+`","srid":4326},`+
		`"short":[1,2],"note":"hello"}`)
	wantRow := map[string]any{"id": num("1"), "text": u, "blob": u, "tags": u, "ids": u, "uuids": u, "kv": u, "kvjson": u, "geo": u,
		"short": []any{num("1"), num("2")}, "note": "hello"}
	typed := envSchema(cols(col("id", "int64", ""), col("text", "string", ""), col("blob", "bytes", ""),
		col("amount", "bytes", nameDecimal, "scale", "2"), col("at", "int64", nameMicroTimestamp)))
	runDecodeCases(t, []decodeCase{{
		// Without the wrapper the bytes column is still recognized by its base64 text.
		name: "unwrapped", value: []byte(unwrapped),
		want: Decoded{Op: compare.OpUpsert, Row: wantRow, Version: lsnV, EventTime: pgTime},
	}, {
		// Wrapped: the string column and the bytes column whose bytes are the placeholder;
		// the typed columns around them still convert.
		name:  "wrapped",
		value: wrap(typed, pgEvent("u", "null", `{"id":1,"text":"`+ph+`","blob":"`+placeholderBase64+`","amount":"AeI6","at":1718454600123456}`)),
		want: Decoded{Op: compare.OpUpsert, Version: lsnV, EventTime: pgTime, Row: map[string]any{
			"id": num("1"), "text": u, "blob": u, "amount": dec("123450", 2), "at": utc("2024-06-15T12:30:00.123456Z")}},
	}, {
		// The placeholder stands in for a value of any column type, even a typed one.
		name:  "wrapped placeholder in typed column",
		value: wrap(typed, pgEvent("u", "null", `{"id":1,"amount":"`+ph+`","at":"`+ph+`"}`)),
		want:  Decoded{Op: compare.OpUpsert, Version: lsnV, EventTime: pgTime, Row: map[string]any{"id": num("1"), "amount": u, "at": u}},
	}})
}

// TestPlaceholderConstants recomputes the derived placeholder texts.
func TestPlaceholderConstants(t *testing.T) {
	ph := []byte(compare.UnavailablePlaceholder)
	if got := base64.StdEncoding.EncodeToString(ph); got != placeholderBase64 {
		t.Errorf("base64 = %s, want %s", got, placeholderBase64)
	}
	// Java's UUID.nameUUIDFromBytes: MD5, version 3, IETF variant.
	h := md5.Sum(ph)
	h[6] = h[6]&0x0f | 0x30
	h[8] = h[8]&0x3f | 0x80
	s := hex.EncodeToString(h[:])
	if got := s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]; got != placeholderUUID {
		t.Errorf("uuid = %s, want %s", got, placeholderUUID)
	}
	for wkbHex, want := range map[string]string{
		"0101000020E6100000000000FC83D797C1000000FC83D797C1": placeholderGeometryWKB,
		"0101000020E61000000C21E7FDFF7F66401842CEFBFF7F5640": placeholderGeographyWKB,
	} {
		b, err := hex.DecodeString(wkbHex)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(b); got != want {
			t.Errorf("wkb %s = %s, want %s", wkbHex, got, want)
		}
	}
}
