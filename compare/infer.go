package compare

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting so that a cyclic map built by mistake fails
// instead of overflowing the stack.
const maxJSONDepth = 512

const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// infer normalizes a value of a column without a configured type, by its Go
// type. depth counts enclosing JSON containers.
func infer(raw any, tol float64, depth int) (Value, error) {
	switch v := raw.(type) {
	case nil:
		return Value{}, nil
	case bool:
		return boolValue(v), nil
	case string:
		return Value{Kind: KindString, Text: v}, nil
	case json.Number:
		return inferNumber(string(v), tol)
	case float64:
		return floatValue(v, tol), nil
	case float32:
		return floatValue(widen(v), tol), nil
	case []byte:
		return Value{Kind: KindBytes, Text: base64.StdEncoding.EncodeToString(v)}, nil
	case Decimal:
		s, err := decimalText(v)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindDecimal, Text: s}, nil
	case *big.Rat:
		// goavro's decimal: its scale is lost, so the text has the fewest
		// digits that hold it; compare.types decimal(S) restores the column's.
		d, err := ratDecimal(v)
		if err != nil {
			return Value{}, err
		}
		return infer(d, tol, depth)
	case time.Duration:
		// goavro's time-millis and time-micros: a time of day.
		return Value{Kind: KindTimeOfDay, Text: timeOfDayText(TimeOfDay(v))}, nil
	case time.Time:
		return timeValue(v), nil
	case Date:
		return Value{Kind: KindDate, Text: dateTime(v).Format(time.DateOnly)}, nil
	case TimeOfDay:
		return Value{Kind: KindTimeOfDay, Text: timeOfDayText(v)}, nil
	case map[string]any, []any:
		b, err := appendCanonicalJSON(nil, v, depth)
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindJSON, Text: string(b)}, nil
	case json.RawMessage:
		return canonicalRawJSON(v, depth)
	case Unavailable:
		return Value{}, errors.New("the unavailable-value placeholder has no normalized form")
	}
	if s, ok := intText(raw); ok {
		return Value{Kind: KindInt, Text: s}, nil
	}
	return Value{}, fmt.Errorf("unsupported value of Go type %T", raw)
}

// intText renders any Go integer type; ok is false for other types.
func intText(raw any) (string, bool) {
	switch v := raw.(type) {
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case *big.Int:
		if v == nil {
			return "0", true
		}
		return v.String(), true
	}
	return "", false
}

// inferNumber keeps an integer literal as an exact Int of any size (bigint ids,
// LSNs, nanosecond timestamps must not go through float64); anything with a
// fraction or exponent is a Float.
func inferNumber(s string, tol float64) (Value, error) {
	if i, ok := canonicalInt(s); ok {
		return Value{Kind: KindInt, Text: i}, nil
	}
	f, err := parseFloat(s)
	if err != nil {
		return Value{}, err
	}
	return floatValue(f, tol), nil
}

// canonicalInt reads an optionally signed run of digits and renders it without
// leading zeros or a sign on zero.
func canonicalInt(s string) (string, bool) {
	body := s
	neg := false
	if len(body) > 0 && (body[0] == '-' || body[0] == '+') {
		neg = body[0] == '-'
		body = body[1:]
	}
	if body == "" {
		return "", false
	}
	for i := 0; i < len(body); i++ {
		if !isDigit(body[i]) {
			return "", false
		}
	}
	trimmed := body
	for len(trimmed) > 1 && trimmed[0] == '0' {
		trimmed = trimmed[1:]
	}
	if trimmed == "0" {
		return "0", true
	}
	if neg {
		if len(trimmed) == len(s)-1 {
			return s, true // already canonical: no copy
		}
		return "-" + trimmed, true
	}
	return trimmed, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func boolValue(b bool) Value {
	if b {
		return Value{Kind: KindBool, Text: "true"}
	}
	return Value{Kind: KindBool, Text: "false"}
}

// widen converts a float32 through its shortest decimal form, so that an Avro
// float 0.1 becomes 0.1 and not 0.10000000149011612, as it would on the side
// that sent the same datum as text.
func widen(f float32) float64 {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return float64(f)
	}
	g, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return g
}

// floatValue quantizes f to the tolerance grid, round(f/tol)×tol, and writes
// the shortest text that reads back as the result. This is a quantization, not
// a true tolerance: values within tol of each other usually land on the same
// grid point, but two values on either side of a midpoint never do, however
// close. When 1/tol is whole (0.01, 0.5) the grid point is computed as
// round(f×(1/tol))/(1/tol), the nearest float to k/100, so it prints as 1.23
// rather than 1.2300000000000002. Negative zero becomes zero.
func floatValue(f, tol float64) Value {
	if tol > 0 && !math.IsNaN(f) && !math.IsInf(f, 0) {
		f = quantize(f, tol)
	}
	if f == 0 {
		f = 0 // drops the sign of -0
	}
	return Value{Kind: KindFloat, Text: strconv.FormatFloat(f, 'g', -1, 64)}
}

// quantize leaves f alone where the grid arithmetic overflows. 1/tol counts
// as whole when it is within a few ulps of an integer: 1/1e-9 is
// 999999999.9999999 in float64, and without the allowance 0.3 would quantize
// to 0.30000000000000004 on a 1e-9 grid.
func quantize(f, tol float64) float64 {
	var g float64
	inv := 1 / tol
	if r := math.Round(inv); r >= 1 && r <= 1<<53 && math.Abs(inv-r) <= 4*r*0x1p-52 {
		g = math.Round(f*r) / r
	} else {
		g = math.Round(f/tol) * tol
	}
	if math.IsInf(g, 0) || math.IsNaN(g) {
		return f
	}
	return g
}

func timeValue(t time.Time) Value {
	var buf [40]byte
	return Value{Kind: KindTime, Text: string(t.UTC().AppendFormat(buf[:0], timeLayout))}
}

func dateTime(d Date) time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// timeOfDayText renders hours past 23 and negative values too: PG allows
// 24:00:00 and MySQL TIME is really a signed duration up to 838:59:59.
func timeOfDayText(t TimeOfDay) string {
	d := time.Duration(t)
	b := make([]byte, 0, 24)
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u
	}
	sec := u / 1e9
	frac := u % 1e9
	h, m, s := sec/3600, sec/60%60, sec%60
	if h < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, h, 10)
	b = append(b, ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10))
	if frac != 0 {
		var f [9]byte
		for i := 8; i >= 0; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 9
		for f[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, f[:n]...)
	}
	return string(b)
}

// decimalText renders d at its own scale; a negative scale means trailing
// zeros of an integer.
func decimalText(d Decimal) (string, error) {
	l := decimalLit(d)
	scale := max(int(d.Scale), 0)
	u, err := l.unscaled(scale, false)
	if err != nil {
		return "", err
	}
	return formatFixed(l.neg, u, scale), nil
}

// appendCanonicalJSON writes v as canonical JSON: object keys sorted, no
// spaces, json.Number literals kept as sent, other typed values by their
// normalized form. Floats inside JSON are not quantized: float_tolerance is
// about float columns, and a document compares by its text.
func appendCanonicalJSON(b []byte, raw any, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	switch v := raw.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case json.Number:
		if !isJSONNumber(string(v)) {
			return nil, fmt.Errorf("%q is not a JSON number", string(v))
		}
		return append(b, v...), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v cannot be written as JSON", v)
		}
		return append(b, floatValue(v, 0).Text...), nil
	case map[string]any:
		b = append(b, '{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonicalJSON(b, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonicalJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	val, err := infer(raw, 0, depth+1)
	if err != nil {
		return nil, err
	}
	if val.Kind == KindFloat && !isJSONNumber(val.Text) {
		return nil, fmt.Errorf("%s cannot be written as JSON", val.Text)
	}
	return appendValueJSON(b, val), nil
}

func canonicalRawJSON(m json.RawMessage, depth int) (Value, error) {
	d := json.NewDecoder(bytes.NewReader(m))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return Value{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if d.More() {
		return Value{}, errors.New("invalid JSON: trailing data")
	}
	b, err := appendCanonicalJSON(nil, v, depth)
	if err != nil {
		return Value{}, err
	}
	return Value{Kind: KindJSON, Text: string(b)}, nil
}

// appendJSONString quotes s as encoding/json does, but without HTML escaping,
// which would only make the canonical text longer.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// The replacement character itself, not its escape, so that
			// canonicalizing canonical text changes nothing.
			b = append(b, s[start:i]...)
			b = append(b, "\uFFFD"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// isJSONNumber checks the strict JSON number grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

// appendValueJSON writes the JSON form of a normalized value (see
// Value.MarshalJSON). A Text that does not fit its Kind's JSON form is written
// as a string rather than producing invalid JSON.
func appendValueJSON(b []byte, v Value) []byte {
	switch v.Kind {
	case KindNull:
		return append(b, "null"...)
	case KindBool:
		if v.Text == "true" || v.Text == "false" {
			return append(b, v.Text...)
		}
	case KindInt:
		if s, ok := canonicalInt(v.Text); ok && s == v.Text {
			return append(b, v.Text...)
		}
	case KindFloat:
		if isJSONNumber(v.Text) {
			return append(b, v.Text...)
		}
	case KindJSON:
		if json.Valid([]byte(v.Text)) {
			return append(b, v.Text...)
		}
	}
	return appendJSONString(b, v.Text)
}

// MarshalJSON renders v as JSON: null, true/false, an exact number for Int and
// Float, the canonical JSON itself for JSON, and a string for everything else.
// Decimal is a string so that no reader turns 1234.50 into a float.
func (v Value) MarshalJSON() ([]byte, error) { return appendValueJSON(nil, v), nil }

var _ json.Marshaler = Value{}
