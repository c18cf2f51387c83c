package consumer

import (
	"errors"
	"math"
	"testing"
)

// TestCheckAvro: the walk that runs before goavro tells truncated data from
// corrupt data and refuses counts that would make goavro allocate for items
// the bytes cannot hold.
func TestCheckAvro(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		data         []byte
		want         error // nil, errAvroShort or errAvroBad
		rest         int   // bytes left after the datum
	}{
		// Why each answer is right: the Avro binary encoding spec.
		{name: "long", schema: `"long"`, data: []byte{0x54}},
		{name: "long cut", schema: `"long"`, data: []byte{0x80}, want: errAvroShort},
		{name: "varint of 11 bytes", schema: `"long"`, data: []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, want: errAvroBad},
		{name: "boolean 2", schema: `"boolean"`, data: []byte{2}, want: errAvroBad},
		{name: "double cut", schema: `"double"`, data: []byte{0, 0, 0}, want: errAvroShort},
		{name: "string", schema: `"string"`, data: []byte{0x04, 'h', 'i', 0xff}, rest: 1},
		{name: "string longer than the data", schema: `"string"`, data: []byte{0x08, 'h', 'i'}, want: errAvroShort},
		{name: "negative length", schema: `"bytes"`, data: []byte{0x03}, want: errAvroBad},
		{name: "fixed cut", schema: `{"type":"fixed","name":"F","size":4}`, data: []byte{1, 2}, want: errAvroShort},
		{name: "enum index out of range", schema: `{"type":"enum","name":"E","symbols":["a"]}`, data: []byte{0x02}, want: errAvroBad},
		{name: "union member", schema: `["null","long"]`, data: []byte{0x02, 0x54}},
		{name: "union index out of range", schema: `["null","long"]`, data: []byte{0x04}, want: errAvroBad},
		{name: "array in two blocks", schema: `{"type":"array","items":"long"}`, data: []byte{0x02, 0x54, 0x01, 0x02, 0x54, 0x00}},
		// 2^31 items claimed in five bytes: each long takes at least one.
		{name: "array count past the data", schema: `{"type":"array","items":"long"}`, data: []byte{0x80, 0x80, 0x80, 0x80, 0x10}, want: errAvroShort},
		{name: "map count past the data", schema: `{"type":"map","values":"null"}`, data: []byte{0x80, 0x80, 0x80, 0x80, 0x10}, want: errAvroShort},
		{name: "block count MinInt64", schema: `{"type":"array","items":"long"}`, data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, want: errAvroBad},
		{name: "nulls within the limit", schema: `{"type":"array","items":"null"}`, data: []byte{0x80, 0x80, 0x08, 0x00}},
		{name: "nulls past the limit", schema: `{"type":"array","items":"null"}`, data: []byte{0x82, 0x80, 0x08, 0x00}, want: errAvroBad},
		{name: "list within the depth", schema: `{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}`, data: []byte{0x02, 0x02, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := compileAvroSchema(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			rest, err := checkAvro(n, tc.data)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			case tc.want == nil && len(rest) != tc.rest:
				t.Fatalf("%d bytes left, want %d", len(rest), tc.rest)
			}
		})
	}
}

// TestJavaFloat: doubles and floats read as Java's Double.toString and
// Float.toString write them, which is JsonConverter's text for FLOAT64/32.
func TestJavaFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{1, 64, "1.0"}, {100, 64, "100.0"}, {1234567, 64, "1234567.0"}, {123.456, 64, "123.456"},
		{0.001, 64, "0.001"}, {0.1, 64, "0.1"}, {-2.5, 64, "-2.5"},
		// Scientific below 10^-3 and from 10^7, always with a fraction digit.
		{1e7, 64, "1.0E7"}, {12345678.9, 64, "1.23456789E7"}, {1e-4, 64, "1.0E-4"}, {1e20, 64, "1.0E20"},
		{math.MaxFloat64, 64, "1.7976931348623157E308"}, {5e-324, 64, "4.9E-324"},
		{0, 64, "0.0"}, {math.Copysign(0, -1), 64, "-0.0"},
		{math.NaN(), 64, "NaN"}, {math.Inf(1), 64, "Infinity"}, {math.Inf(-1), 64, "-Infinity"},
		// float32: the shortest digits of the float32, not of its float64.
		{float64(float32(0.1)), 32, "0.1"}, {float64(float32(1e-5)), 32, "1.0E-5"}, {math.MaxFloat32, 32, "3.4028235E38"},
	} {
		if got := javaFloat(tc.f, tc.bits); got != tc.want {
			t.Errorf("javaFloat(%v, %d) = %s, want %s", tc.f, tc.bits, got, tc.want)
		}
	}
}
