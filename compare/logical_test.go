package compare

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

func b64(b ...byte) string { return base64.StdEncoding.EncodeToString(b) }

// A Decimal sent without its schema wrapper is only base64 (cdc-formats.md
// §2): decimal(S) supplies the scale.
func TestDecimalFromBase64(t *testing.T) {
	runValueCases(t, "decimal(2)", 0, []valueCase{
		{"AeI6", v(KindDecimal, "1234.50"), "", "cdc-formats.md worked example: AeI6 is 123450"},
		{"/h3G", v(KindDecimal, "-1234.50"), "", "cdc-formats.md worked example: /h3G is -123450"},
		{b64(0x00), v(KindDecimal, "0.00"), "", "zero"},
		{b64(0xff), v(KindDecimal, "-0.01"), "", "a single 0xff byte is -1"},
		{b64(0x00, 0x80), v(KindDecimal, "1.28"), "", "a leading zero byte keeps 0x80 positive"},
		{"1234", v(KindDecimal, "-26588.24"), "", "scale > 0: digits without a point, 4k long, are base64 (decimal text always has its point)"},
		{"1234.5", v(KindDecimal, "1234.50"), "", "a point means text"},
		{"12345", v(KindDecimal, "12345.00"), "", "not a base64 length: text"},
		{"-123", v(KindDecimal, "-123.00"), "", "'-' is no base64 character: text"},
		{"AeI", Value{}, `"AeI" is not a number`, "unpadded base64 is neither"},
		{"AeI6=", Value{}, "is not a number", "bad padding is neither"},
		{map[string]any{"scale": json.Number("1"), "value": b64(0x30, 0x39)}, v(KindDecimal, "1234.50"), "", "VariableScaleDecimal without schema: 12345 at scale 1"},
		{map[string]any{"scale": int32(0), "value": b64(0x07)}, v(KindDecimal, "7.00"), "", "VariableScaleDecimal from Avro: int scale"},
		{map[string]any{"scale": json.Number("3"), "value": b64(0x30, 0x39)}, Value{}, "12.345 has more than 2 fraction digits", "an exact value that does not fit is an error"},
		{map[string]any{"scale": json.Number("x"), "value": "AA=="}, Value{}, "variable-scale decimal: scale", "bad scale"},
		{map[string]any{"scale": json.Number("1"), "value": "!!"}, Value{}, "variable-scale decimal: value", "bad base64"},
		{map[string]any{"a": 1, "b": 2}, Value{}, "cannot convert a map", "any other object is not a number"},
		{big.NewRat(2469, 2), v(KindDecimal, "1234.50"), "", "goavro decimal as *big.Rat"},
		{big.NewRat(-1, 20), v(KindDecimal, "-0.05"), "", "negative *big.Rat"},
		{big.NewRat(1, 3), Value{}, "no finite decimal form", "1/3 fits no decimal column"},
		{big.NewRat(1, 1000), Value{}, "0.001 has more than 2 fraction digits", "exact, so never rounded"},
	})
	runValueCases(t, "decimal(0)", 0, []valueCase{
		{"1234", v(KindDecimal, "1234"), "", "scale 0: a number is a number (a scale-0 Decimal whose base64 is all digits would be misread)"},
		{"AeI6", v(KindDecimal, "123450"), "", "not a number, valid base64: bytes"},
	})
	runValueCases(t, "int", 0, []valueCase{
		{map[string]any{"scale": json.Number("0"), "value": b64(0x2a)}, v(KindInt, "42"), "", "VariableScaleDecimal of an integer"},
		{big.NewRat(42, 1), v(KindInt, "42"), "", "*big.Rat integer"},
	})
	runValueCases(t, "float", 0, []valueCase{
		{map[string]any{"scale": json.Number("2"), "value": "AeI6"}, v(KindFloat, "1234.5"), "", "VariableScaleDecimal to a double column"},
		{big.NewRat(1, 4), v(KindFloat, "0.25"), "", "*big.Rat to a double column"},
		{map[string]any{"x": 1}, Value{}, "cannot convert a map", "other objects are no number"},
	})
	runValueCases(t, "", 0, []valueCase{
		{big.NewRat(2469, 2), v(KindDecimal, "1234.5"), "", "untyped *big.Rat: its scale is lost, so type the column"},
		{(*big.Rat)(nil), v(KindDecimal, "0"), "", "nil is zero, not a panic"},
		{2*time.Hour + 3*time.Millisecond, v(KindTimeOfDay, "02:00:00.003"), "", "goavro time-millis is a time.Duration"},
	})
}

func TestUUIDType(t *testing.T) {
	const want = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	raw := []byte{0x3f, 0x25, 0x04, 0xe0, 0x4f, 0x89, 0x11, 0xd3, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01}
	runValueCases(t, "uuid", 0, []valueCase{
		{want, v(KindUUID, want), "", "Postgres / io.debezium.data.Uuid: canonical already"},
		{strings.ToUpper(want), v(KindUUID, want), "", "SQL Server, .NET: upper case"},
		{"3F2504e0-4f89-11D3-9a0c-0305E82C3301", v(KindUUID, want), "", "mixed case"},
		{"3f2504e04f8911d39a0c0305e82c3301", v(KindUUID, want), "", "no dashes"},
		{"{" + want + "}", v(KindUUID, want), "", "braces"},
		{"urn:uuid:" + want, v(KindUUID, want), "", "URN"},
		{"URN:UUID:" + strings.ToUpper(want), v(KindUUID, want), "", "URN in upper case"},
		{raw, v(KindUUID, want), "", "Avro fixed(16) / MySQL BINARY(16) bytes"},
		{[16]byte(raw), v(KindUUID, want), "", "an array of 16 bytes"},
		{base64.StdEncoding.EncodeToString(raw), v(KindUUID, want), "", "BINARY(16) in JSON: base64"},
		{"3f2504e0-4f89-11d3-9a0c-0305e82c330", Value{}, "want a UUID", "one digit short"},
		{"3f2504e0+4f89-11d3-9a0c-0305e82c3301", Value{}, "want a UUID", "a wrong separator"},
		{"3f2504e0-4f89-11d3-9a0c-0305e82c330g", Value{}, "want a UUID", "not hex"},
		{raw[:15], Value{}, "15 bytes", "15 bytes are no UUID"},
		{json.Number("42"), Value{}, "cannot convert a json.Number", "a number is no UUID"},
	})
}

// timestamp guesses an epoch number's unit from its magnitude; timestamp_s,
// _ms, _us and _ns fix it, for instants where the guess fails.
func TestTimestampUnits(t *testing.T) {
	runValueCases(t, "timestamp", 0, []valueCase{
		{"1718454600123", v(KindTime, "2024-06-15T12:30:00.123Z"), "", "epoch millis as text"},
		{"1718454600123456", v(KindTime, "2024-06-15T12:30:00.123456Z"), "", "epoch µs as text"},
		{"1718454600.5", v(KindTime, "2024-06-15T12:30:00.5Z"), "", "fractional epoch seconds as text"},
		{int64(86400000), v(KindTime, "1972-09-27T00:00:00Z"), "", "one day in ms read as seconds: the guess fails near 1970"},
	})
	runValueCases(t, "timestamp_ms", 0, []valueCase{
		{int64(86400000), v(KindTime, "1970-01-02T00:00:00Z"), "", "a fixed unit reads 1970 right"},
		{json.Number("86400000"), v(KindTime, "1970-01-02T00:00:00Z"), "", "JSON number"},
		{"86400000", v(KindTime, "1970-01-02T00:00:00Z"), "", "text"},
		{json.Number("86400000.5"), v(KindTime, "1970-01-02T00:00:00.0005Z"), "", "a fraction of a millisecond"},
		{int64(-1), v(KindTime, "1969-12-31T23:59:59.999Z"), "", "negative"},
		{"2024-06-15T12:30:00.123Z", v(KindTime, "2024-06-15T12:30:00.123Z"), "", "ISO text ignores the unit"},
		{crossInstant, v(KindTime, "2024-06-15T12:30:00.123Z"), "", "a typed instant ignores the unit"},
	})
	runValueCases(t, "timestamp_us", 0, []valueCase{
		{int64(86400000000), v(KindTime, "1970-01-02T00:00:00Z"), "", "µs"},
		{int64(1718454600123456), v(KindTime, "2024-06-15T12:30:00.123456Z"), "", "MicroTimestamp"},
	})
	runValueCases(t, "timestamp_s", 0, []valueCase{
		{int64(100000000000), v(KindTime, "5138-11-16T09:46:40Z"), "", "1e11 seconds, which the guess would read as ms"},
		{int64(86400), v(KindTime, "1970-01-02T00:00:00Z"), "", "one day"},
	})
	runValueCases(t, "timestamp_ns", 0, []valueCase{
		{int64(86400000000000), v(KindTime, "1970-01-02T00:00:00Z"), "", "ns"},
		{int64(5), v(KindTime, "1970-01-01T00:00:00.000000005Z"), "", "5 ns, which the guess would read as seconds"},
	})
	for _, s := range []string{"timestamp", "timestamp_s", "timestamp_ms", "timestamp_us", "timestamp_ns", "uuid", "decimal(3)"} {
		ft, err := ParseFieldType(s)
		if err != nil || ft.String() != s {
			t.Errorf("ParseFieldType(%q) = %v, %v; want it to render back", s, ft, err)
		}
	}
	if _, err := ParseFieldType("timestamp_min"); err == nil || !strings.Contains(err.Error(), "timestamp_ms") {
		t.Errorf("unknown unit: err = %v, want the list of types", err)
	}
}
