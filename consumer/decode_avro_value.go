package consumer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/recon-dev/recon/compare"
)

// Avro values take the shapes the JSON decoders give the same column, so that
// one logical row digests the same in every format: integers and floats as
// json.Number (floats in Java's text, as JsonConverter writes them, which
// matters inside struct and array columns hashed as JSON), bytes as []byte,
// Decimal and VariableScaleDecimal as compare.Decimal, dates as compare.Date,
// times of day as compare.TimeOfDay, instants as UTC time.Time, records and
// maps as map[string]any, arrays as []any, unions unwrapped.

// maxAvroDecimalScale bounds a decimal's scale in a writer schema: goavro
// computes 10^scale for every value it decodes. Postgres NUMERIC allows 1000.
const maxAvroDecimalScale = 1000

// avroColumn converts one top-level row column. Debezium's placeholder for an
// unchanged TOAST column becomes compare.Unavailable, in every shape the
// connector sends it (see isPlaceholder).
func avroColumn(v any, n *avroNode) (any, error) {
	v, n, err := avroUnwrap(v, n)
	if err != nil || v == nil {
		return nil, err
	}
	switch x := v.(type) {
	case string:
		if x == compare.UnavailablePlaceholder || x == placeholderHstore {
			return compare.Unavailable{}, nil
		}
	case []byte:
		if string(x) == compare.UnavailablePlaceholder {
			return compare.Unavailable{}, nil
		}
	}
	cv, err := avroConvert(v, n)
	if err != nil {
		return nil, err
	}
	if avroPlaceholder(cv) {
		return compare.Unavailable{}, nil
	}
	return cv, nil
}

// avroPlaceholder recognizes the placeholder in converted container values:
// Avro bytes stay bytes where JSON has base64 text.
func avroPlaceholder(v any) bool {
	switch x := v.(type) {
	case compare.Decimal:
		// A Decimal column's placeholder is the placeholder's bytes, read
		// as an unscaled integer (positive: '_' is below 0x80).
		return x.Unscaled != nil && x.Unscaled.Sign() > 0 && string(x.Unscaled.Bytes()) == compare.UnavailablePlaceholder
	case []any:
		if len(x) == 1 {
			if b, ok := x[0].([]byte); ok {
				return string(b) == compare.UnavailablePlaceholder
			}
		}
	case map[string]any:
		if wkb, ok := x["wkb"].([]byte); ok {
			s := base64.StdEncoding.EncodeToString(wkb)
			return s == placeholderGeometryWKB || s == placeholderGeographyWKB
		}
	}
	return isPlaceholder(v)
}

// avroUnwrap resolves a union: goavro gives nil or {"<member name>": value}.
// Other nodes pass through.
func avroUnwrap(v any, n *avroNode) (any, *avroNode, error) {
	if n.kind != avroUnion || v == nil {
		return v, n, nil
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, nil, fmt.Errorf("union value %T: want one member", v)
	}
	for name, mv := range m {
		for _, b := range n.branches {
			if b.name == name {
				return mv, b, nil
			}
		}
		// goavro names a few types unlike the spec; an optional column has
		// one member besides null, which is then the one.
		var only *avroNode
		for _, b := range n.branches {
			if b.kind != avroNull {
				if only != nil {
					return nil, nil, fmt.Errorf("union member %.60q not in the schema", name)
				}
				only = b
			}
		}
		if only != nil {
			return mv, only, nil
		}
	}
	return nil, nil, errors.New("union value without a member")
}

// avroConvert converts a native value of n (not a union's wrapper: see
// avroUnwrap) and everything inside it.
func avroConvert(v any, n *avroNode) (any, error) {
	v, n, err := avroUnwrap(v, n)
	if err != nil || v == nil {
		return nil, err
	}
	switch x := v.(type) {
	case int32:
		return avroInteger(int64(x), n)
	case int64:
		return avroInteger(x, n)
	case float32:
		return json.Number(javaFloat(float64(x), 32)), nil
	case float64:
		return json.Number(javaFloat(x, 64)), nil
	case *big.Rat:
		return avroDecimal(x, n.scale)
	case []byte:
		if n.conv == convDecimal {
			return compare.Decimal{Unscaled: twosComplement(x), Scale: n.scale}, nil
		}
		return bytes.Clone(x), nil // goavro's bytes alias the record
	case time.Time:
		if n.conv == convDate || n.name == "int.date" {
			return compare.Date(x.Unix() / 86400), nil
		}
		return x.UTC(), nil
	case time.Duration:
		return compare.TimeOfDay(x), nil
	case string:
		if !utf8.ValidString(x) {
			return nil, errInvalidUTF8
		}
		if n.conv == convZoned {
			if x == "infinity" || x == "-infinity" {
				return x, nil // Postgres ±infinity has no instant; normalization decides
			}
			return parseISO(x)
		}
		return x, nil
	case map[string]any:
		return avroRecordOrMap(x, n)
	case []any:
		if n.kind != avroArray {
			return nil, fmt.Errorf("array value for %s", n.describe())
		}
		for i, e := range x {
			ce, err := avroConvert(e, n.items)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			x[i] = ce
		}
		return x, nil
	}
	return v, nil // bool; an enum's symbol is a string above
}

func avroRecordOrMap(m map[string]any, n *avroNode) (any, error) {
	switch n.kind {
	case avroMap:
		for k, e := range m {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("entry key: %w", errInvalidUTF8)
			}
			ce, err := avroConvert(e, n.items)
			if err != nil {
				return nil, fmt.Errorf("entry %.40q: %w", k, err)
			}
			m[k] = ce
		}
		return m, nil
	case avroRecord:
		if n.conv == convVarDecimal {
			return avroVarDecimal(m)
		}
		for _, f := range n.fields {
			cv, err := avroConvert(m[f.name], f.node)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			m[f.name] = cv
		}
		return m, nil
	}
	return nil, fmt.Errorf("record value for %s", n.describe())
}

// avroInteger is an int or long: a Debezium or Connect time type when the
// schema names one, else an exact number.
func avroInteger(i int64, n *avroNode) (any, error) {
	switch n.conv {
	case convDate:
		if i > math.MaxInt32 || i < math.MinInt32 {
			return nil, fmt.Errorf("date %d: want an int32", i)
		}
		return compare.Date(i), nil
	case convTime:
		if i > math.MaxInt64/int64(n.unit) || i < math.MinInt64/int64(n.unit) {
			return nil, fmt.Errorf("time of day %d overflows: %w", i, errOversized)
		}
		return compare.TimeOfDay(time.Duration(i) * n.unit), nil
	case convTimestamp:
		// Integer constructors only: a float64 would round µs and ns away.
		switch n.unit {
		case time.Millisecond:
			return time.UnixMilli(i).UTC(), nil
		case time.Microsecond:
			return time.UnixMicro(i).UTC(), nil
		}
		return time.Unix(0, i).UTC(), nil
	}
	return json.Number(strconv.FormatInt(i, 10)), nil
}

// avroDecimal undoes goavro's division by 10^scale, which is exact.
func avroDecimal(r *big.Rat, scale int32) (compare.Decimal, error) {
	u := new(big.Int).Mul(r.Num(), pow10(int64(scale)))
	u, rem := u.QuoRem(u, r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		return compare.Decimal{}, fmt.Errorf("decimal %s has more than %d fraction digits", r.RatString(), scale)
	}
	return compare.Decimal{Unscaled: u, Scale: scale}, nil
}

// avroVarDecimal reads io.debezium.data.VariableScaleDecimal {scale, value}.
func avroVarDecimal(m map[string]any) (compare.Decimal, error) {
	scale, ok := m["scale"].(int32)
	if !ok {
		return compare.Decimal{}, fmt.Errorf("%s: scale %T: want an int", nameVarScaleDecimal, m["scale"])
	}
	if scale > maxAvroDecimalScale || scale < -maxAvroDecimalScale {
		return compare.Decimal{}, fmt.Errorf("%s: scale %d: %w", nameVarScaleDecimal, scale, errOversized)
	}
	b, ok := m["value"].([]byte)
	if !ok {
		return compare.Decimal{}, fmt.Errorf("%s: value %T: want bytes", nameVarScaleDecimal, m["value"])
	}
	return compare.Decimal{Unscaled: twosComplement(b), Scale: scale}, nil
}

// javaFloat writes f as Java's Double.toString (bits 64) or Float.toString
// (bits 32) do since JDK 19: the shortest digits that read back as f, plain
// from 10^-3 to 10^7 and with a fraction digit always ("1.0"), else
// "1.2345E10". Jackson writes Connect's FLOAT64 and FLOAT32 this way. Older
// JDKs sometimes wrote a digit more; that only matters for doubles inside
// struct, array or map columns, which compare as JSON text.
func javaFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	sci := math.Abs(f) < 1e-3 || math.Abs(f) >= 1e7
	text := strconv.FormatFloat(f, 'e', -1, bits)
	if sci && !strings.Contains(text, ".") {
		// One digit is shortest, but "d.d" needs two: Java picks the
		// two-digit decimal nearest f (4.9E-324, not 5.0E-324).
		text = strconv.FormatFloat(f, 'e', 1, bits)
	}
	mant, expText, _ := strings.Cut(text, "e")
	exp, _ := strconv.Atoi(expText)
	var b strings.Builder
	if mant[0] == '-' {
		b.WriteByte('-')
		mant = mant[1:]
	}
	digits := strings.Replace(mant, ".", "", 1)
	if sci {
		b.WriteString(digits[:1] + "." + digits[1:] + "E" + strconv.Itoa(exp))
		return b.String()
	}
	if exp < 0 {
		b.WriteString("0." + strings.Repeat("0", -exp-1) + digits)
		return b.String()
	}
	if len(digits) <= exp+1 {
		b.WriteString(digits + strings.Repeat("0", exp+1-len(digits)) + ".0")
		return b.String()
	}
	b.WriteString(digits[:exp+1] + "." + digits[exp+1:])
	return b.String()
}
