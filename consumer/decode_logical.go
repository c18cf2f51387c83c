package consumer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/recon-dev/recon/compare"
)

// errOversized marks values whose exact form would cost unbounded work or
// memory, such as a NUMERIC decimal written as 1e999999999.
var errOversized = errors.New("too large to represent")

// maxDecimalRescale bounds the digits of a NUMERIC decimal and the power of
// ten it is rescaled by. Postgres NUMERIC has at most 131072 integer and 16383
// fractional digits.
const maxDecimalRescale = 1 << 18

// convert turns one JSON-decoded value into its logical value per c.
func convert(v any, c *conv) (any, error) {
	if v == nil || c == nil {
		return v, nil
	}
	if _, ok := v.(compare.Unavailable); ok {
		return v, nil
	}
	switch c.kind {
	case convStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, typeErr("struct", v)
		}
		for _, f := range c.fields {
			fv, ok := m[f.name]
			if !ok {
				continue
			}
			nv, err := convert(fv, f.conv)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			m[f.name] = nv
		}
		return m, nil
	case convArray:
		a, ok := v.([]any)
		if !ok {
			return nil, typeErr("array", v)
		}
		for i, ev := range a {
			nv, err := convert(ev, c.elem)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			a[i] = nv
		}
		return a, nil
	case convMap:
		return convertMap(v, c)
	}
	return convertScalar(v, c)
}

func convertScalar(v any, c *conv) (any, error) {
	switch c.kind {
	case convBytes:
		return decodeBase64(v)
	case convDecimal:
		return decimalOf(v, c.scale)
	case convVarDecimal:
		return varScaleDecimal(v)
	case convDate:
		n, err := integer(v, 32)
		if err != nil {
			return nil, err
		}
		return compare.Date(n), nil
	case convTime:
		n, err := integer(v, 64)
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt64/int64(c.unit) || n < math.MinInt64/int64(c.unit) {
			return nil, fmt.Errorf("time of day %d overflows: %w", n, errOversized)
		}
		return compare.TimeOfDay(time.Duration(n) * c.unit), nil
	case convTimestamp:
		// Integer constructors only: a float64 would round µs and ns away.
		n, err := integer(v, 64)
		if err != nil {
			return nil, err
		}
		switch c.unit {
		case time.Millisecond:
			return time.UnixMilli(n).UTC(), nil
		case time.Microsecond:
			return time.UnixMicro(n).UTC(), nil
		default:
			return time.Unix(0, n).UTC(), nil
		}
	case convZoned:
		s, ok := v.(string)
		if !ok {
			return nil, typeErr("ISO-8601 string", v)
		}
		if s == "infinity" || s == "-infinity" {
			// Postgres ±infinity has no instant; normalization decides.
			return s, nil
		}
		return parseISO(s)
	}
	return v, nil
}

// convertMap handles both JSON forms of a Connect map: an object when the
// keys are strings, else an array of [key, value] pairs.
func convertMap(v any, c *conv) (any, error) {
	switch m := v.(type) {
	case map[string]any:
		for k, ev := range m {
			nv, err := convert(ev, c.elem)
			if err != nil {
				return nil, fmt.Errorf("entry %.40q: %w", k, err)
			}
			m[k] = nv
		}
		return m, nil
	case []any:
		for i, pv := range m {
			pair, ok := pv.([]any)
			if !ok || len(pair) != 2 {
				return nil, fmt.Errorf("entry %d: want a [key, value] pair", i)
			}
			var err error
			if pair[0], err = convert(pair[0], c.key); err != nil {
				return nil, fmt.Errorf("entry %d key: %w", i, err)
			}
			if pair[1], err = convert(pair[1], c.elem); err != nil {
				return nil, fmt.Errorf("entry %d value: %w", i, err)
			}
		}
		return m, nil
	}
	return nil, typeErr("map", v)
}

func typeErr(want string, v any) error {
	return fmt.Errorf("want %s, got %s", want, jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// integer reads an integral JSON number of the given bit size.
func integer(v any, bits int) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, typeErr("integer", v)
	}
	i, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%.40q: want an int%d", n, bits)
	}
	return i, nil
}

func decodeBase64(v any) ([]byte, error) {
	s, ok := v.(string)
	if !ok {
		return nil, typeErr("base64 string", v)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
	}
	return b, nil
}

// decimalOf reads a Connect Decimal: base64 of a big-endian two's-complement
// unscaled integer, or a JSON number under decimal.format=NUMERIC.
func decimalOf(v any, scale int32) (compare.Decimal, error) {
	switch x := v.(type) {
	case string:
		b, err := decodeBase64(x)
		if err != nil {
			return compare.Decimal{}, err
		}
		return compare.Decimal{Unscaled: twosComplement(b), Scale: scale}, nil
	case json.Number:
		return decimalFromNumber(string(x), scale)
	}
	return compare.Decimal{}, typeErr("base64 string or number", v)
}

func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// varScaleDecimal reads io.debezium.data.VariableScaleDecimal {"scale","value"}.
func varScaleDecimal(v any) (compare.Decimal, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return compare.Decimal{}, typeErr(`struct {"scale","value"}`, v)
	}
	scale, err := integer(m["scale"], 32)
	if err != nil {
		return compare.Decimal{}, fmt.Errorf("scale: %w", err)
	}
	b, err := decodeBase64(m["value"])
	if err != nil {
		return compare.Decimal{}, fmt.Errorf("value: %w", err)
	}
	return compare.Decimal{Unscaled: twosComplement(b), Scale: int32(scale)}, nil
}

// decimalFromNumber reads a JSON number exactly and rescales it to scale.
// Trailing zeros beyond the scale are dropped; other extra digits would lose
// precision, so they are an error.
func decimalFromNumber(s string, scale int32) (compare.Decimal, error) {
	mant, e := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		var err error
		if e, err = strconv.ParseInt(s[i+1:], 10, 32); err != nil {
			return compare.Decimal{}, fmt.Errorf("exponent of %.40q: %w", s, errOversized)
		}
		mant = s[:i]
	}
	if len(mant) > maxDecimalRescale {
		return compare.Decimal{}, fmt.Errorf("%d digits: %w", len(mant), errOversized)
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	unscaled, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return compare.Decimal{}, fmt.Errorf("%.40q: not a decimal number", s)
	}
	shift := int64(scale) - (int64(len(frac)) - e) // power of ten to multiply by
	if shift > maxDecimalRescale || shift < -maxDecimalRescale {
		return compare.Decimal{}, fmt.Errorf("%.40q at scale %d: %w", s, scale, errOversized)
	}
	switch {
	case shift > 0:
		unscaled.Mul(unscaled, pow10(shift))
	case shift < 0:
		q, r := new(big.Int).QuoRem(unscaled, pow10(-shift), new(big.Int))
		if r.Sign() != 0 {
			return compare.Decimal{}, fmt.Errorf("%.40q has more than %d fractional digits", s, scale)
		}
		unscaled = q
	}
	return compare.Decimal{Unscaled: unscaled, Scale: scale}, nil
}

func pow10(n int64) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(n), nil)
}

// isoLayouts are the ISO-8601 forms accepted, zoned first. Zone-less forms
// are read as UTC, as Debezium encodes zone-less columns.
var isoLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// parseISO reads an ISO-8601 instant with 0 to 9 fraction digits, so that
// "…00.1234Z" and "…00.123400Z" are the same instant rather than different strings.
func parseISO(s string) (time.Time, error) {
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%.60q: not an ISO-8601 timestamp", s)
}

// Debezium's stand-ins for unchanged TOAST values, per column type
// (UnchangedToastedPlaceholder in the Postgres connector): the string, its
// bytes, one-element text/bytea/uuid arrays, int arrays of its bytes, an
// hstore map (or its JSON text), and geometry/geography points. The derived
// texts are spelled out here and recomputed by the tests.
const (
	placeholderBase64 = "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
	placeholderHstore = `{"` + compare.UnavailablePlaceholder + `":"` + compare.UnavailablePlaceholder + `"}`
	// placeholderUUID is Java's UUID.nameUUIDFromBytes (MD5, version 3) of the placeholder.
	placeholderUUID = "b68a35a7-17ad-35b3-af2a-ae46edb4545a"
	// WKB of geometry SRID=4326;POINT(-99999999 -99999999) and of geography
	// SRID=4326;POINT(179.999999 89.999999).
	placeholderGeometryWKB  = "AQEAACDmEAAAAAAA/IPXl8EAAAD8g9eXwQ=="
	placeholderGeographyWKB = "AQEAACDmEAAADCHn/f9/ZkAYQs77/39WQA=="
)

// isPlaceholder reports whether v is Debezium's "unchanged, not sent" value.
// Columns are checked before logical conversion, so bytes are still base64.
func isPlaceholder(v any) bool {
	switch x := v.(type) {
	case string:
		return x == compare.UnavailablePlaceholder || x == placeholderBase64 || x == placeholderHstore
	case []any:
		if len(x) == 1 {
			s, ok := x[0].(string)
			return ok && (s == compare.UnavailablePlaceholder || s == placeholderBase64 || s == placeholderUUID)
		}
		// int[] and bigint[] get the placeholder's bytes as numbers.
		if len(x) != len(compare.UnavailablePlaceholder) {
			return false
		}
		for i, e := range x {
			n, ok := e.(json.Number)
			if !ok || len(n) > 3 {
				return false
			}
			if b, err := strconv.Atoi(string(n)); err != nil || b != int(compare.UnavailablePlaceholder[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		if len(x) == 1 {
			s, ok := x[compare.UnavailablePlaceholder].(string)
			return ok && s == compare.UnavailablePlaceholder
		}
		if wkb, ok := x["wkb"].(string); ok {
			return wkb == placeholderGeometryWKB || wkb == placeholderGeographyWKB
		}
	}
	return false
}
