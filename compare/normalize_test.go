package compare

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// valueCase is one normalization: raw in, either want or an error containing
// wantErr out. why says why the answer is right.
type valueCase struct {
	raw     any
	want    Value
	wantErr string
	why     string
}

func v(k Kind, text string) Value { return Value{Kind: k, Text: text} }

func dec(unscaled int64, scale int32) Decimal {
	return Decimal{Unscaled: big.NewInt(unscaled), Scale: scale}
}

func bigDec(unscaled string, scale int32) Decimal {
	n, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		panic(unscaled)
	}
	return Decimal{Unscaled: n, Scale: scale}
}

func mustRules(t testing.TB, key []string, rename map[string]string, ignore []string, types map[string]string, tol float64) *Rules {
	t.Helper()
	r, err := NewRules(key, rename, ignore, types, tol)
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

// runValueCases normalizes each case as column "c", typed as typ ("" for none).
func runValueCases(t *testing.T, typ string, tol float64, cases []valueCase) {
	t.Helper()
	types := map[string]string{}
	if typ != "" {
		types["c"] = typ
	}
	r := mustRules(t, []string{"id"}, nil, nil, types, tol)
	for _, c := range cases {
		got, err := r.NormalizeValue("c", c.raw)
		switch {
		case c.wantErr != "" && err == nil:
			t.Errorf("%s %T(%#v) = %v, want error %q (%s)", typ, c.raw, c.raw, got, c.wantErr, c.why)
		case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
			t.Errorf("%s %T(%#v): error %q, want it to contain %q (%s)", typ, c.raw, c.raw, err, c.wantErr, c.why)
		case c.wantErr == "" && err != nil:
			t.Errorf("%s %T(%#v): unexpected error %v (%s)", typ, c.raw, c.raw, err, c.why)
		case c.wantErr == "" && got != c.want:
			t.Errorf("%s %T(%#v) = %v %q, want %v %q (%s)", typ, c.raw, c.raw, got.Kind, got.Text, c.want.Kind, c.want.Text, c.why)
		}
	}
}

var microInstant = time.UnixMicro(1718454600123456).UTC()

const microText = "2024-06-15T12:30:00.123456Z"

func TestInfer(t *testing.T) {
	runValueCases(t, "", 0, []valueCase{
		{nil, v(KindNull, ""), "", "JSON null is Null"},
		{true, v(KindBool, "true"), "", "bool keeps its value"},
		{false, v(KindBool, "false"), "", "bool keeps its value"},
		{"hello", v(KindString, "hello"), "", "strings are kept byte for byte"},
		{"", v(KindString, ""), "", "the empty string is a value, not null"},
		{json.Number("42"), v(KindInt, "42"), "", "an integer literal is an Int"},
		{json.Number("-0"), v(KindInt, "0"), "", "zero has no sign"},
		{json.Number("007"), v(KindInt, "7"), "", "leading zeros are not part of the value"},
		{json.Number("9223372036854775807"), v(KindInt, "9223372036854775807"), "", "max int64 must not pass through float64"},
		{json.Number("123456789012345678901234"), v(KindInt, "123456789012345678901234"), "", "integers beyond 64 bits stay exact"},
		{json.Number("-123456789012345678901234"), v(KindInt, "-123456789012345678901234"), "", "negative big integers stay exact"},
		{json.Number("1.5"), v(KindFloat, "1.5"), "", "a fraction makes a Float"},
		{json.Number("2.50"), v(KindFloat, "2.5"), "", "Float text is the shortest form"},
		{json.Number("1e3"), v(KindFloat, "1000"), "", "an exponent makes a Float"},
		{json.Number("1E-7"), v(KindFloat, "1e-07"), "", "'g' formatting of a small float"},
		{json.Number("abc"), Value{}, `"abc" is not a number`, "a json.Number must be a number"},
		{json.Number("1e400"), Value{}, "out of the float64 range", "overflowing floats are rejected, not Inf"},
		{1.5, v(KindFloat, "1.5"), "", "float64 is a Float"},
		{42.0, v(KindFloat, "42"), "", "an integral float64 stays a Float"},
		{math.Copysign(0, -1), v(KindFloat, "0"), "", "-0 equals 0"},
		{math.NaN(), v(KindFloat, "NaN"), "", "NaN has a text form"},
		{math.Inf(-1), v(KindFloat, "-Inf"), "", "infinities have a text form"},
		{float32(0.1), v(KindFloat, "0.1"), "", "float32 widens through its shortest text, not to 0.10000000149011612"},
		{42, v(KindInt, "42"), "", "int is an Int"},
		{int32(-7), v(KindInt, "-7"), "", "int32 is an Int"},
		{int64(math.MinInt64), v(KindInt, "-9223372036854775808"), "", "min int64 is exact"},
		{uint64(math.MaxUint64), v(KindInt, "18446744073709551615"), "", "max uint64 is exact"},
		{uint8(255), v(KindInt, "255"), "", "small unsigned types too"},
		{big.NewInt(-5), v(KindInt, "-5"), "", "*big.Int is an Int"},
		{[]byte{0, 1, 2, 0xff}, v(KindBytes, "AAEC/w=="), "", "bytes are base64 std"},
		{[]byte{}, v(KindBytes, ""), "", "empty bytes are empty text"},
		{dec(123450, 2), v(KindDecimal, "1234.50"), "", "cdc-formats.md worked example: AeI6 at scale 2"},
		{dec(-123450, 2), v(KindDecimal, "-1234.50"), "", "cdc-formats.md worked example: /h3G at scale 2"},
		{dec(-5, 2), v(KindDecimal, "-0.05"), "", "a leading zero before the point"},
		{dec(0, 2), v(KindDecimal, "0.00"), "", "zero keeps its scale"},
		{dec(7, 0), v(KindDecimal, "7"), "", "scale 0 has no point"},
		{dec(12, -2), v(KindDecimal, "1200"), "", "a negative scale means trailing zeros"},
		{Decimal{Scale: 2}, v(KindDecimal, "0.00"), "", "a nil unscaled value is zero, not a panic"},
		{bigDec("123456789012345678901234567890", 4), v(KindDecimal, "12345678901234567890123456.7890"), "", "decimals are exact at any size"},
		{microInstant, v(KindTime, microText), "", "cdc-formats.md MicroTimestamp worked example"},
		{time.Date(2024, 6, 15, 14, 30, 0, 0, time.FixedZone("", 2*3600)), v(KindTime, "2024-06-15T12:30:00Z"), "", "instants are written in UTC"},
		{time.Date(2024, 6, 15, 12, 30, 0, 100e6, time.UTC), v(KindTime, "2024-06-15T12:30:00.1Z"), "", "trailing fraction zeros are trimmed"},
		{Date(19889), v(KindDate, "2024-06-15"), "", "cdc-formats.md: 19889 days is 2024-06-15"},
		{Date(-1), v(KindDate, "1969-12-31"), "", "days before the epoch"},
		{TimeOfDay(12*time.Hour + 30*time.Minute + 5*time.Second + 123*time.Millisecond), v(KindTimeOfDay, "12:30:05.123"), "", "fraction trimmed"},
		{TimeOfDay(0), v(KindTimeOfDay, "00:00:00"), "", "no fraction when it is zero"},
		{TimeOfDay(24 * time.Hour), v(KindTimeOfDay, "24:00:00"), "", "PG allows 24:00:00"},
		{TimeOfDay(-time.Hour), v(KindTimeOfDay, "-01:00:00"), "", "MySQL TIME may be negative"},
		{TimeOfDay(838*time.Hour + 59*time.Minute + 59*time.Second), v(KindTimeOfDay, "838:59:59"), "", "MySQL TIME maximum"},
		{map[string]any{"b": json.Number("1.50"), "a": []any{true, nil, "x"}}, v(KindJSON, `{"a":[true,null,"x"],"b":1.50}`), "", "keys sorted, no spaces, number literal kept"},
		{map[string]any{"h": "<&>\n\"\\"}, v(KindJSON, `{"h":"<&>\n\"\\"}`), "", "no HTML escaping; JSON escapes only where required"},
		{map[string]any{"s": "\xff"}, v(KindJSON, "{\"s\":\"\uFFFD\"}"), "", "invalid UTF-8 becomes U+FFFD, as a decoder would read it"},
		{map[string]any{"n": int64(7), "d": dec(150, 2)}, v(KindJSON, `{"d":"1.50","n":7}`), "", "typed values nest by their JSON form"},
		{map[string]any{}, v(KindJSON, "{}"), "", "empty object"},
		{[]any{}, v(KindJSON, "[]"), "", "empty array"},
		{json.RawMessage(`{"b": 1, "a": [1.0, "x"]}`), v(KindJSON, `{"a":[1.0,"x"],"b":1}`), "", "raw JSON is canonicalized the same way"},
		{json.RawMessage(`{`), Value{}, "invalid JSON", "raw JSON must parse"},
		{json.RawMessage(`1 2`), Value{}, "trailing data", "raw JSON must be one value"},
		{map[string]any{"n": json.Number("01")}, Value{}, "not a JSON number", "canonical JSON must stay valid JSON"},
		{[]any{math.NaN()}, Value{}, "cannot be written as JSON", "JSON has no NaN"},
		{Unavailable{}, Value{}, "placeholder has no normalized form", "Normalize handles it; a lone value cannot"},
		{struct{}{}, Value{}, "unsupported value of Go type struct {}", "unknown Go types are an error, not a guess"},
	})
}

func TestInferCyclicJSONFails(t *testing.T) {
	m := map[string]any{}
	m["self"] = m
	r := mustRules(t, []string{"id"}, nil, nil, nil, 0)
	if _, err := r.NormalizeValue("c", m); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("cyclic map: err = %v, want a depth error instead of a stack overflow", err)
	}
}

func TestDecimalType(t *testing.T) {
	runValueCases(t, "decimal(2)", 0, []valueCase{
		{dec(123450, 2), v(KindDecimal, "1234.50"), "", "already at scale"},
		{dec(12345, 1), v(KindDecimal, "1234.50"), "", "scale raised exactly"},
		{dec(12345000, 4), v(KindDecimal, "1234.50"), "", "dropping zero digits loses nothing"},
		{dec(-5, 2), v(KindDecimal, "-0.05"), "", "negative below one"},
		{dec(1234456, 3), Value{}, "1234.456 has more than 2 fraction digits", "a Decimal with more digits means the scale is misconfigured"},
		{json.Number("1234.5"), v(KindDecimal, "1234.50"), "", "JSON number padded to the scale"},
		{"1234.50", v(KindDecimal, "1234.50"), "", "decimal.handling.mode=string"},
		{"1234.5", v(KindDecimal, "1234.50"), "", "shorter fraction padded"},
		{"-0.5", v(KindDecimal, "-0.50"), "", "negative fraction"},
		{"1e3", v(KindDecimal, "1000.00"), "", "exponent read exactly"},
		{"1.2345e2", v(KindDecimal, "123.45"), "", "exponent shifts the point exactly"},
		{"-0", v(KindDecimal, "0.00"), "", "-0 is 0"},
		{"-0.00", v(KindDecimal, "0.00"), "", "-0.00 is 0.00"},
		{"+7", v(KindDecimal, "7.00"), "", "explicit plus sign"},
		{".5", v(KindDecimal, "0.50"), "", "no integer digits"},
		{"1234.", v(KindDecimal, "1234.00"), "", "no fraction digits"},
		{" 12 ", Value{}, `" 12 " is not a number`, "spaces are not trimmed: the other side would not have them"},
		{"12x", Value{}, `"12x" is not a number`, "garbage"},
		{"", Value{}, `"" is not a number`, "empty string is not zero"},
		{"0x1", Value{}, "is not a number", "no hex (four characters would be read as base64: see TestDecimalFromBase64)"},
		{"1.234", Value{}, `"1.234" has more than 2 fraction digits`, "exact text that does not fit is an error"},
		{"1e999999999", Value{}, "too many digits", "a huge exponent is refused, not allocated"},
		{"1e-999999999", Value{}, "more than 2 fraction digits", "a tiny exact value does not fit"},
		{json.Number("0.30000000000000004"), v(KindDecimal, "0.30"), "", "a JSON number may be a double: rounded"},
		{json.Number("1.005"), v(KindDecimal, "1.01"), "", "half away from zero"},
		{json.Number("-1.005"), v(KindDecimal, "-1.01"), "", "half away from zero, negative"},
		{json.Number("1.004"), v(KindDecimal, "1.00"), "", "below half rounds down"},
		{json.Number("9.995"), v(KindDecimal, "10.00"), "", "carry through every digit"},
		{json.Number("1e-999999999"), v(KindDecimal, "0.00"), "", "a tiny double rounds to zero"},
		{1234.5, v(KindDecimal, "1234.50"), "", "float64 from decimal.handling.mode=double"},
		{1.005, v(KindDecimal, "1.01"), "", "rounded from the shortest text 1.005, not the binary 1.00499..."},
		{0.1 + 0.2, v(KindDecimal, "0.30"), "", "float noise rounds away"},
		{-0.004, v(KindDecimal, "0.00"), "", "rounds to zero, which has no sign"},
		{float32(19.99), v(KindDecimal, "19.99"), "", "float32 through its shortest text"},
		{math.NaN(), Value{}, "NaN is not a finite number", "no decimal NaN"},
		{int64(42), v(KindDecimal, "42.00"), "", "integers gain the scale"},
		{-3, v(KindDecimal, "-3.00"), "", "negative int"},
		{uint64(math.MaxUint64), v(KindDecimal, "18446744073709551615.00"), "", "large unsigned"},
		{true, Value{}, "cannot convert a bool", "bool is not a number"},
		{microInstant, Value{}, "cannot convert a time.Time", "time is not a number"},
	})
	runValueCases(t, "decimal(0)", 0, []valueCase{
		{"1234", v(KindDecimal, "1234"), "", "scale 0 has no point"},
		{"1234.0", v(KindDecimal, "1234"), "", "zero fraction dropped"},
		{dec(123450, 2), Value{}, "more than 0 fraction digits", "1234.5 does not fit scale 0"},
		{json.Number("2.5"), v(KindDecimal, "3"), "", "half away from zero"},
	})
}

func TestTimestampType(t *testing.T) {
	runValueCases(t, "timestamp", 0, []valueCase{
		{microInstant, v(KindTime, microText), "", "cdc-formats.md: MicroTimestamp as time.Time"},
		{microText, v(KindTime, microText), "", "ZonedTimestamp text of the same instant"},
		{"2024-06-15T14:30:00.123456+02:00", v(KindTime, microText), "", "an offset is applied"},
		{"2024-06-15 12:30:00.123456", v(KindTime, microText), "", "zone-less text is UTC (Debezium convention)"},
		{"2024-06-15T12:30:00.123456", v(KindTime, microText), "", "zone-less with T"},
		{"2024-06-15 12:30:00.123456+00", v(KindTime, microText), "", "PG text output with an hour offset"},
		{"2024-06-15T12:30:00.123456+0000", v(KindTime, microText), "", "offset without colon"},
		{"2024-06-15T12:30:00.1234560Z", v(KindTime, microText), "", "7 fraction digits, same instant: parse, don't compare strings"},
		{"2024-06-15T12:30:00Z", v(KindTime, "2024-06-15T12:30:00Z"), "", "no fraction"},
		{"2024-06-15T12:30:00.000000001Z", v(KindTime, "2024-06-15T12:30:00.000000001Z"), "", "9 fraction digits"},
		{"2024-06-15", v(KindTime, "2024-06-15T00:00:00Z"), "", "a date is midnight UTC"},
		{"June 15", Value{}, `"June 15" is not an ISO-8601 timestamp`, "free text is rejected"},
		{"2024-13-01T00:00:00Z", Value{}, "is not an ISO-8601 timestamp", "month 13"},
		{json.Number("1718454600123456"), v(KindTime, microText), "", "epoch µs (16 digits)"},
		{int64(1718454600123456), v(KindTime, microText), "", "Avro long µs"},
		{uint64(1718454600123456), v(KindTime, microText), "", "unsigned µs"},
		{json.Number("1718454600123"), v(KindTime, "2024-06-15T12:30:00.123Z"), "", "epoch ms: same second, fewer digits, a different instant"},
		{int64(1718454600), v(KindTime, "2024-06-15T12:30:00Z"), "", "epoch seconds"},
		{int64(1718454600123456789), v(KindTime, "2024-06-15T12:30:00.123456789Z"), "", "epoch ns (NanoTimestamp)"},
		{json.Number("1718454600.123456"), v(KindTime, microText), "", "fractional seconds read exactly"},
		{json.Number("1718454600123456.4"), v(KindTime, "2024-06-15T12:30:00.1234564Z"), "", "fractional µs to ns"},
		{1718454600.5, v(KindTime, "2024-06-15T12:30:00.5Z"), "", "float64 seconds"},
		{int64(99999999999), v(KindTime, "5138-11-16T09:46:39Z"), "", "just under 1e11 is still seconds"},
		{int64(100000000000), v(KindTime, "1973-03-03T09:46:40Z"), "", "1e11 is milliseconds"},
		{int64(-1), v(KindTime, "1969-12-31T23:59:59Z"), "", "negative epoch seconds"},
		{int64(math.MinInt64), v(KindTime, "1677-09-21T00:12:43.145224192Z"), "", "min int64 is nanoseconds, not a negative overflow"},
		{json.Number("1e400"), Value{}, "out of the timestamp range", "too far away"},
		{Date(19889), v(KindTime, "2024-06-15T00:00:00Z"), "", "a Date is midnight UTC"},
		{true, Value{}, "cannot convert a bool", "bool is no instant"},
		{TimeOfDay(time.Hour), Value{}, "cannot convert a compare.TimeOfDay", "a time of day is no instant"},
	})
}

// The same instant must normalize to one text however each system sends it.
func TestMicroTimestampRepresentationsAgree(t *testing.T) {
	r := mustRules(t, []string{"id"}, nil, nil, map[string]string{"ts": "timestamp"}, 0)
	same := []any{microInstant, microText, "2024-06-15 12:30:00.123456", json.Number("1718454600123456"), int64(1718454600123456)}
	want, err := r.NormalizeValue("ts", same[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range same {
		if got, err := r.NormalizeValue("ts", raw); err != nil || got != want {
			t.Errorf("%T %v = %v, %v; want %v", raw, raw, got, err, want)
		}
	}
	// Debezium's ms Timestamp of the same column has lost the µs: a real difference.
	if got, _ := r.NormalizeValue("ts", json.Number("1718454600123")); got == want {
		t.Errorf("epoch ms %v must differ from the µs instant", got)
	}
}

func TestIntType(t *testing.T) {
	runValueCases(t, "int", 0, []valueCase{
		{int64(42), v(KindInt, "42"), "", "already an int"},
		{json.Number("42"), v(KindInt, "42"), "", "JSON integer"},
		{json.Number("42.0"), v(KindInt, "42"), "", "zero fraction is still an integer"},
		{"42", v(KindInt, "42"), "", "string with an integer"},
		{"42.0", v(KindInt, "42"), "", "string with a zero fraction"},
		{"4.2e1", v(KindInt, "42"), "", "exponent read exactly"},
		{"-0", v(KindInt, "0"), "", "zero has no sign"},
		{"007", v(KindInt, "7"), "", "leading zeros dropped"},
		{42.0, v(KindInt, "42"), "", "integral float64"},
		{dec(4200, 2), v(KindInt, "42"), "", "Decimal 42.00"},
		{true, v(KindInt, "1"), "", "bool as 1"},
		{false, v(KindInt, "0"), "", "bool as 0"},
		{json.Number("123456789012345678901234"), v(KindInt, "123456789012345678901234"), "", "big integers stay exact"},
		{"123456789012345678901234", v(KindInt, "123456789012345678901234"), "", "big integers in text too"},
		{"42.5", Value{}, `"42.5" is not an integer`, "never truncated"},
		{42.5, Value{}, "42.5 is not an integer", "never truncated"},
		{dec(425, 1), Value{}, "42.5 is not an integer", "never truncated"},
		{"forty", Value{}, `"forty" is not a number`, "not a number at all"},
		{" 42", Value{}, `" 42" is not a number`, "no trimming"},
		{math.Inf(1), Value{}, "+Inf is not a finite number", "no infinite int"},
		{microInstant, Value{}, "cannot convert a time.Time", "time is not an int"},
		{[]byte("42"), Value{}, "cannot convert a []uint8", "bytes are not an int"},
	})
}

func TestStringType(t *testing.T) {
	runValueCases(t, "string", 0, []valueCase{
		{"x", v(KindString, "x"), "", "kept"},
		{json.Number("1.50"), v(KindString, "1.50"), "", "a number as its literal"},
		{int64(42), v(KindString, "42"), "", "integer text"},
		{0.1, v(KindString, "0.1"), "", "shortest float text"},
		{true, v(KindString, "true"), "", "bool text"},
		{dec(123450, 2), v(KindString, "1234.50"), "", "decimal text"},
		{microInstant, v(KindString, microText), "", "canonical time text"},
		{Date(19889), v(KindString, "2024-06-15"), "", "date text"},
		{TimeOfDay(12*time.Hour + 30*time.Minute), v(KindString, "12:30:00"), "", "time-of-day text"},
		{[]byte("hi"), v(KindString, "aGk="), "", "bytes as base64"},
		{map[string]any{"b": 1, "a": 2}, v(KindString, `{"a":2,"b":1}`), "", "canonical JSON text"},
		{Unavailable{}, Value{}, "cannot convert", "no text for a missing value"},
	})
}

func TestBoolType(t *testing.T) {
	runValueCases(t, "bool", 0, []valueCase{
		{true, v(KindBool, "true"), "", "bool"},
		{false, v(KindBool, "false"), "", "bool"},
		{"true", v(KindBool, "true"), "", "word"},
		{"FALSE", v(KindBool, "false"), "", "case-insensitive"},
		{"t", v(KindBool, "true"), "", "PG text form"},
		{"F", v(KindBool, "false"), "", "PG text form"},
		{"Yes", v(KindBool, "true"), "", "yes/no"},
		{"no", v(KindBool, "false"), "", "yes/no"},
		{"1", v(KindBool, "true"), "", "digit"},
		{"0", v(KindBool, "false"), "", "digit"},
		{int64(1), v(KindBool, "true"), "", "MySQL TINYINT(1)"},
		{0, v(KindBool, "false"), "", "MySQL TINYINT(1)"},
		{json.Number("1"), v(KindBool, "true"), "", "JSON number"},
		{json.Number("1.0"), v(KindBool, "true"), "", "integral JSON number"},
		{0.0, v(KindBool, "false"), "", "float zero"},
		{"2", Value{}, `"2" is not a boolean`, "only 0 and 1"},
		{int64(2), Value{}, "2 is not a boolean", "only 0 and 1"},
		{int64(-1), Value{}, "-1 is not a boolean", "-1 is not 1"},
		{0.5, Value{}, "0.5 is not a boolean", "fractions are not booleans"},
		{"maybe", Value{}, `"maybe" is not a boolean`, "unknown word"},
		{"", Value{}, `"" is not a boolean`, "empty is not false"},
		{microInstant, Value{}, "cannot convert a time.Time", "time is not a bool"},
	})
}

func TestFloatType(t *testing.T) {
	runValueCases(t, "float", 0, []valueCase{
		{1.5, v(KindFloat, "1.5"), "", "float64"},
		{json.Number("1.50"), v(KindFloat, "1.5"), "", "shortest text"},
		{"1e3", v(KindFloat, "1000"), "", "numeric string"},
		{int64(42), v(KindFloat, "42"), "", "integers become Float"},
		{dec(123450, 2), v(KindFloat, "1234.5"), "", "Decimal becomes Float"},
		{"NaN", v(KindFloat, "NaN"), "", "a double column can hold NaN"},
		{"-Infinity", v(KindFloat, "-Inf"), "", "Java's text for -Inf"},
		{"+Inf", v(KindFloat, "+Inf"), "", "Go's text for +Inf reads back"},
		{float32(0.1), v(KindFloat, "0.1"), "", "float32 via shortest text"},
		{math.Copysign(0, -1), v(KindFloat, "0"), "", "-0 is 0"},
		{"abc", Value{}, `"abc" is not a number`, "not numeric"},
		{" 1", Value{}, `" 1" is not a number`, "no trimming"},
		{"0x10", Value{}, `"0x10" is not a number`, "no hex floats"},
		{"1_000", Value{}, `"1_000" is not a number`, "no underscores"},
		{"1e400", Value{}, "out of the float64 range", "overflow"},
		{true, Value{}, "cannot convert a bool", "bool is not a number"},
	})
	runValueCases(t, "float", 0.01, []valueCase{
		{1.234, v(KindFloat, "1.23"), "", "round(123.4)/100"},
		{1.2341, v(KindFloat, "1.23"), "", "within tolerance of 1.234: same grid point"},
		{1.236, v(KindFloat, "1.24"), "", "round(123.6)/100"},
		{json.Number("-1.234"), v(KindFloat, "-1.23"), "", "negative values quantize symmetrically"},
		{-0.001, v(KindFloat, "0"), "", "quantized to -0, which is 0"},
		{math.NaN(), v(KindFloat, "NaN"), "", "NaN is not quantized"},
		{math.MaxFloat64, v(KindFloat, "1.7976931348623157e+308"), "", "where the grid overflows the value is kept"},
	})
	runValueCases(t, "float", 0.3, []valueCase{
		{1.0, v(KindFloat, "0.8999999999999999"), "", "1/0.3 is not whole: round(3.33)×0.3, as computed in float64"},
	})
	// Tolerance also applies to floats of columns without a type.
	runValueCases(t, "", 0.01, []valueCase{
		{1.2341, v(KindFloat, "1.23"), "", "inferred Float is quantized too"},
		{json.Number("1.2341"), v(KindFloat, "1.23"), "", "inferred Float from JSON too"},
		{json.Number("12345"), v(KindInt, "12345"), "", "Int is never quantized"},
		{map[string]any{"f": 1.2341}, v(KindJSON, `{"f":1.2341}`), "", "floats inside JSON are not: a document compares by its text"},
	})
}

func TestNullStaysNullForEveryType(t *testing.T) {
	for _, typ := range []string{"", "decimal(2)", "timestamp", "int", "string", "bool", "float"} {
		runValueCases(t, typ, 0, []valueCase{{nil, Value{}, "", "null is null whatever the type"}})
	}
}

func TestNormalize(t *testing.T) {
	r := mustRules(t, []string{"id"},
		map[string]string{"order_id": "id", "amt": "amount"},
		[]string{"updated_at"},
		map[string]string{"amount": "decimal(2)", "created_at": "timestamp"}, 0)
	raw := map[string]any{
		"order_id":   json.Number("42"),
		"amt":        "12.5",
		"created_at": "2024-06-15 12:30:00.123456",
		"updated_at": json.Number("1718454600123456"),
		"status":     "paid",
		"note":       Unavailable{},
		"blob":       UnavailablePlaceholder,
	}
	row, unchanged, err := r.Normalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Row{
		"id":         v(KindInt, "42"),        // renamed; inferred from json.Number
		"amount":     v(KindDecimal, "12.50"), // renamed, then typed by its dataset name
		"created_at": v(KindTime, microText),  // typed
		"status":     v(KindString, "paid"),   // untouched
	}
	if !mapsEqual(row, want) {
		t.Errorf("row = %v, want %v", row, want)
	}
	// Sorted; the literal placeholder counts as unavailable; ignored columns are not listed.
	if !slices.Equal(unchanged, []string{"blob", "note"}) {
		t.Errorf("unchanged = %v, want [blob note]", unchanged)
	}

	// An ignored column is dropped even when unavailable.
	_, unchanged, err = r.Normalize(map[string]any{"order_id": 1, "updated_at": Unavailable{}})
	if err != nil || unchanged != nil {
		t.Errorf("ignored unavailable: unchanged = %v, err = %v; want none", unchanged, err)
	}

	// The error names the dataset column, the type and the value.
	_, _, err = r.Normalize(map[string]any{"order_id": 1, "amt": "12x"})
	if err == nil || err.Error() != `column "amount": decimal(2): "12x" is not a number` {
		t.Errorf("bad amount: err = %v", err)
	}

	// A system row holding both order_id (renamed onto id) and id is ambiguous.
	_, _, err = r.Normalize(map[string]any{"order_id": 1, "id": 2})
	if err == nil || !strings.Contains(err.Error(), `both "order_id" (renamed) and "id" map to it`) {
		t.Errorf("collision: err = %v", err)
	}

	row, unchanged, err = r.Normalize(map[string]any{})
	if err != nil || len(row) != 0 || unchanged != nil {
		t.Errorf("empty row: %v %v %v", row, unchanged, err)
	}
}

func mapsEqual(a, b Row) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		if y, ok := b[k]; !ok || x != y {
			return false
		}
	}
	return true
}

func TestNewRulesRejects(t *testing.T) {
	cases := []struct {
		key     []string
		rename  map[string]string
		ignore  []string
		types   map[string]string
		tol     float64
		wantErr string
		why     string
	}{
		{nil, nil, nil, nil, 0, "key: at least one field is required", "no key, no identity"},
		{[]string{""}, nil, nil, nil, 0, "key: field names must not be empty", "empty field name"},
		{[]string{"id", "id"}, nil, nil, nil, 0, `key: field "id" listed twice`, "duplicate key field"},
		{[]string{"id"}, nil, []string{"id"}, nil, 0, `key: field "id" is also ignored`, "an ignored key cannot be built"},
		{[]string{"id"}, nil, []string{""}, nil, 0, "ignore: column names must not be empty", "empty ignore"},
		{[]string{"id"}, nil, nil, map[string]string{"amount": "money"}, 0, `types: column "amount": unknown type "money"`, "unknown type"},
		{[]string{"id"}, nil, nil, nil, -1, "float_tolerance: -1", "negative tolerance"},
		{[]string{"id"}, nil, nil, nil, math.NaN(), "float_tolerance: NaN", "NaN tolerance"},
		{[]string{"id"}, map[string]string{"a": "x", "b": "x"}, nil, nil, 0, `rename: "a" and "b" both map to "x"`, "two columns onto one"},
		{[]string{"id"}, map[string]string{"x": "x", "y": "x"}, nil, nil, 0, `rename: "x" and "y" both map to "x"`, "an identity rename still claims its name"},
		{[]string{"id"}, map[string]string{"": "x"}, nil, nil, 0, "column names must not be empty", "empty rename"},
		{[]string{"id"}, map[string]string{"id": "old_id"}, nil, nil, 0, `key: field "id" is renamed to "old_id"`, "the key column is renamed away"},
	}
	for _, c := range cases {
		_, err := NewRules(c.key, c.rename, c.ignore, c.types, c.tol)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want %q", c.why, err, c.wantErr)
		}
	}
	// Every problem is reported at once, as config validation does.
	_, err := NewRules(nil, nil, nil, map[string]string{"a": "money"}, -1)
	for _, want := range []string{"key:", "types:", "float_tolerance:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("joined errors: %v, want it to contain %q", err, want)
		}
	}
}

func TestKey(t *testing.T) {
	composite := mustRules(t, []string{"tenant_id", "id"}, map[string]string{"tenant": "tenant_id"}, nil, map[string]string{"id": "int"}, 0)
	intKey := mustRules(t, []string{"id"}, nil, nil, map[string]string{"id": "int"}, 0)
	untyped := mustRules(t, []string{"id"}, nil, nil, nil, 0)
	cases := []struct {
		r       *Rules
		raw     map[string]any
		want    string
		wantErr error
		why     string
	}{
		{composite, map[string]any{"id": json.Number("7"), "tenant": "acme"}, "acme,7", nil, "configured order after rename, whatever the map holds"},
		{composite, map[string]any{"id": "7", "tenant": "acme", "extra": 1}, "acme,7", nil, "other columns do not matter; \"7\" is int 7"},
		{composite, map[string]any{"tenant": "a,b/c", "id": 1}, "a%2Cb%2Fc,1", nil, "separators inside a value are escaped"},
		{composite, map[string]any{"id": 7}, "", ErrMissingKeyField, "tenant absent"},
		{composite, map[string]any{"tenant_id": "acme", "id": 7}, "", ErrMissingKeyField, "the system calls it tenant, not tenant_id"},
		{composite, map[string]any{"tenant": nil, "id": 7}, "", ErrMissingKeyField, "null key field"},
		{composite, map[string]any{"tenant": Unavailable{}, "id": 7}, "", ErrMissingKeyField, "an unavailable key field is as good as absent"},
		{intKey, map[string]any{"id": "42"}, "42", nil, `"42" for an int column`},
		{intKey, map[string]any{"id": json.Number("42")}, "42", nil, "42 for an int column: same key"},
		{intKey, map[string]any{"id": int64(42)}, "42", nil, "Avro long: same key"},
		{intKey, map[string]any{"id": 42.0}, "42", nil, "float64 from a decoder without UseNumber: same key"},
		{intKey, map[string]any{"id": "042"}, "42", nil, "leading zero: same key"},
		{untyped, map[string]any{"id": "42"}, "42", nil, "without a type the kinds differ but the key text is the same"},
		{untyped, map[string]any{"id": json.Number("42")}, "42", nil, "see above"},
	}
	for _, c := range cases {
		k, err := c.r.Key(c.raw)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%s: err = %v, want %v", c.why, err, c.wantErr)
			}
			continue
		}
		if err != nil || k.String() != c.want {
			t.Errorf("%s: Key = %q, %v; want %q", c.why, k.String(), err, c.want)
		}
	}
	// A bad key value is an error, but not a missing field.
	if _, err := intKey.Key(map[string]any{"id": "x"}); err == nil || errors.Is(err, ErrMissingKeyField) {
		t.Errorf("bad int key: err = %v, want a conversion error", err)
	}
}

func TestKeyFromRowMatchesKey(t *testing.T) {
	r := mustRules(t, []string{"tenant_id", "id"}, map[string]string{"tenant": "tenant_id"}, nil, map[string]string{"id": "int"}, 0)
	raw := map[string]any{"tenant": "acme", "id": "7", "note": "x"}
	row, _, err := r.Normalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	fromRow, err1 := r.KeyFromRow(row)
	fromRaw, err2 := r.Key(raw)
	if err1 != nil || err2 != nil || fromRow.String() != fromRaw.String() || !slices.Equal(fromRow.Values, fromRaw.Values) {
		t.Errorf("KeyFromRow = %v (%v), Key = %v (%v): want equal", fromRow, err1, fromRaw, err2)
	}
	if !slices.Equal(fromRow.Fields, []string{"tenant_id", "id"}) {
		t.Errorf("fields = %v, want dataset names in key order", fromRow.Fields)
	}
	for _, bad := range []Row{{"id": v(KindInt, "7")}, {"id": v(KindInt, "7"), "tenant_id": {}}} {
		if _, err := r.KeyFromRow(bad); !errors.Is(err, ErrMissingKeyField) {
			t.Errorf("KeyFromRow(%v): err = %v, want ErrMissingKeyField (absent or null)", bad, err)
		}
	}
}
