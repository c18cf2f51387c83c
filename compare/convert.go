package compare

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
)

// maxDigits bounds the digits of an exact number we are asked to write out,
// far above any SQL numeric, so that "1e999999999" is rejected instead of
// allocating a gigabyte.
const maxDigits = 1 << 12

var (
	errInexact  = errors.New("inexact")
	errTooLarge = errors.New("too many digits")
)

// convert normalizes a non-nil raw value to the configured type ft.
func convert(ft FieldType, raw any, tol float64) (Value, error) {
	switch ft.Kind {
	case KindDecimal:
		return toDecimal(raw, int(ft.Scale))
	case KindTime:
		return toTime(raw, ft.Unit)
	case KindInt:
		return toInt(raw)
	case KindString:
		return toString(raw)
	case KindBool:
		return toBool(raw)
	case KindFloat:
		return toFloat(raw, tol)
	case KindUUID:
		return toUUID(raw)
	}
	return Value{}, errors.New("unsupported configured type")
}

// number is a numeric input read exactly.
type number struct {
	lit numLit
	// binary is set for inputs that may carry binary floating-point noise
	// (float64, float32, and json.Number, which a double column sends): they
	// are rounded to the target precision instead of rejected.
	binary bool
	text   string // the input as shown in error messages
}

// toNumber reads any numeric input. ok is false when raw is not a number at
// all; err is set when it claims to be one but is not.
func toNumber(raw any) (n number, ok bool, err error) {
	switch v := raw.(type) {
	case string:
		l, ok := parseNumLit(v)
		if !ok {
			return number{}, true, fmt.Errorf("%s is not a number", quoteShort(v))
		}
		return number{lit: l, text: quoteShort(v)}, true, nil
	case json.Number:
		l, ok := parseNumLit(string(v))
		if !ok {
			return number{}, true, fmt.Errorf("%s is not a number", quoteShort(string(v)))
		}
		return number{lit: l, binary: true, text: shorten(string(v))}, true, nil
	case float64:
		return floatNumber(v)
	case float32:
		return floatNumber(widen(v))
	case Decimal:
		s, err := decimalText(v)
		if err != nil {
			return number{}, true, err
		}
		return number{lit: decimalLit(v), text: s}, true, nil
	case *big.Rat:
		d, err := ratDecimal(v)
		if err != nil {
			return number{}, true, err
		}
		return toNumber(d)
	case map[string]any:
		// A VariableScaleDecimal without the schema wrapper that names it.
		d, ok, err := varScaleDecimal(v)
		if !ok {
			return number{}, false, nil
		}
		if err != nil {
			return number{}, true, err
		}
		return toNumber(d)
	}
	if s, isInt := intText(raw); isInt {
		l, _ := parseNumLit(s)
		return number{lit: l, text: s}, true, nil
	}
	return number{}, false, nil
}

func floatNumber(f float64) (number, bool, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return number{}, true, fmt.Errorf("%v is not a finite number", f)
	}
	// The shortest text that reads back as f is what a person (or Java's
	// Double.toString on the other side) would write for it.
	s := strconv.FormatFloat(f, 'g', -1, 64)
	l, _ := parseNumLit(s)
	return number{lit: l, binary: true, text: s}, true, nil
}

func decimalLit(d Decimal) numLit {
	if d.Unscaled == nil {
		return numLit{}
	}
	l, _ := parseNumLit(d.Unscaled.String())
	l.exp -= int(d.Scale)
	return l
}

// toDecimal writes exactly scale fraction digits. Exact inputs (Decimal,
// strings, integers) must fit: a dropped non-zero digit means the configured
// scale is wrong, and rounding would hide a real difference. Binary
// floating-point inputs are rounded half away from zero from their shortest
// decimal text, so 1.005 becomes 1.01 at scale 2. A string may also be the
// base64 of a Connect Decimal sent without its schema (see decimalBytes).
func toDecimal(raw any, scale int) (Value, error) {
	if s, ok := raw.(string); ok {
		if b, ok := decimalBytes(s, scale); ok {
			raw = Decimal{Unscaled: twosComplement(b), Scale: int32(scale)}
		}
	}
	n, ok, err := toNumber(raw)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{}, cannotConvert(raw)
	}
	u, err := n.lit.unscaled(scale, n.binary)
	switch {
	case errors.Is(err, errInexact):
		return Value{}, fmt.Errorf("%s has more than %d fraction digits", n.text, scale)
	case err != nil:
		return Value{}, fmt.Errorf("%s: %w", n.text, err)
	}
	return Value{Kind: KindDecimal, Text: formatFixed(n.lit.neg, u, scale)}, nil
}

// toInt accepts integers in any form, including "42.0" and 42.0, and bools as
// 0 and 1; a non-zero fraction is an error, never truncated.
func toInt(raw any) (Value, error) {
	switch v := raw.(type) {
	case bool:
		if v {
			return Value{Kind: KindInt, Text: "1"}, nil
		}
		return Value{Kind: KindInt, Text: "0"}, nil
	case json.Number:
		if s, ok := canonicalInt(string(v)); ok {
			return Value{Kind: KindInt, Text: s}, nil
		}
	}
	if s, ok := intText(raw); ok {
		return Value{Kind: KindInt, Text: s}, nil
	}
	n, ok, err := toNumber(raw)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{}, cannotConvert(raw)
	}
	u, err := n.lit.unscaled(0, false)
	switch {
	case errors.Is(err, errInexact):
		return Value{}, fmt.Errorf("%s is not an integer", n.text)
	case err != nil:
		return Value{}, fmt.Errorf("%s: %w", n.text, err)
	}
	return Value{Kind: KindInt, Text: formatFixed(n.lit.neg, u, 0)}, nil
}

// toFloat reads any number or numeric string (including NaN and ±Inf, which a
// double column can hold) and quantizes it as floatValue does.
func toFloat(raw any, tol float64) (Value, error) {
	switch v := raw.(type) {
	case float64:
		return floatValue(v, tol), nil
	case float32:
		return floatValue(widen(v), tol), nil
	case string:
		f, err := parseFloat(v)
		if err != nil {
			return Value{}, err
		}
		return floatValue(f, tol), nil
	case json.Number:
		f, err := parseFloat(string(v))
		if err != nil {
			return Value{}, err
		}
		return floatValue(f, tol), nil
	case Decimal:
		s, err := decimalText(v)
		if err != nil {
			return Value{}, err
		}
		f, err := parseFloat(s)
		if err != nil {
			return Value{}, err
		}
		return floatValue(f, tol), nil
	}
	if s, ok := intText(raw); ok {
		f, err := parseFloat(s)
		if err != nil {
			return Value{}, err
		}
		return floatValue(f, tol), nil
	}
	// *big.Rat and VariableScaleDecimal objects: exact, then to the nearest double.
	n, ok, err := toNumber(raw)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{}, cannotConvert(raw)
	}
	f, err := parseFloat(n.text)
	if err != nil {
		return Value{}, err
	}
	return floatValue(f, tol), nil
}

// parseFloat is strconv.ParseFloat restricted to decimal literals and the
// special values: no hex floats, underscores or spaces, which no CDC format
// sends and which would make different texts of one column compare equal.
func parseFloat(s string) (float64, error) {
	if _, ok := parseNumLit(s); !ok {
		switch strings.ToLower(strings.TrimLeft(s, "+-")) {
		case "nan", "inf", "infinity":
		default:
			return 0, fmt.Errorf("%s is not a number", quoteShort(s))
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is out of the float64 range", quoteShort(s))
	}
	return f, nil
}

func toBool(raw any) (Value, error) {
	switch v := raw.(type) {
	case bool:
		return boolValue(v), nil
	case string:
		switch strings.ToLower(v) {
		case "true", "t", "yes", "1":
			return boolValue(true), nil
		case "false", "f", "no", "0":
			return boolValue(false), nil
		}
		return Value{}, fmt.Errorf("%s is not a boolean", quoteShort(v))
	}
	n, ok, err := toNumber(raw)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{}, cannotConvert(raw)
	}
	if u, err := n.lit.unscaled(0, false); err == nil && (u == "0" || u == "1" && !n.lit.neg) {
		return boolValue(u == "1"), nil
	}
	return Value{}, fmt.Errorf("%s is not a boolean: want 0 or 1", n.text)
}

// toString writes any scalar as text: a number as its literal, a bool as
// true/false, and typed values by their canonical text.
func toString(raw any) (Value, error) {
	switch v := raw.(type) {
	case string:
		return Value{Kind: KindString, Text: v}, nil
	case json.Number:
		return Value{Kind: KindString, Text: string(v)}, nil
	case float64:
		return Value{Kind: KindString, Text: floatValue(v, 0).Text}, nil
	case float32:
		return Value{Kind: KindString, Text: floatValue(widen(v), 0).Text}, nil
	case []byte:
		return Value{Kind: KindString, Text: base64.StdEncoding.EncodeToString(v)}, nil
	case Unavailable:
		return Value{}, cannotConvert(raw)
	}
	v, err := infer(raw, 0, 0)
	if err != nil {
		return Value{}, err
	}
	return Value{Kind: KindString, Text: v.Text}, nil
}

// timeLayouts are tried in order; Go's parser also accepts a fraction of any
// length after the seconds. Zone-less text is taken as UTC, the Debezium
// convention for PG TIMESTAMP and MySQL DATETIME.
var timeLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z07",
	time.DateOnly,
}

// toTime reads an instant. Numbers are epoch times in unit when it is set
// (timestamp_ms and friends); otherwise, for plain `timestamp`, the unit is
// guessed from the magnitude: |n| < 1e11 seconds, < 1e14 milliseconds, < 1e17
// microseconds, else nanoseconds. A guess, not a unit, because compare.types
// is per dataset while the unit is per system: a Postgres source may send a
// MicroTimestamp and a MySQL target epoch milliseconds of the same column.
// For instants between 1973-03-03 and 5138-11-16 the four units are orders
// of magnitude apart, so the guess holds; outside that range (1970 to 1973 in
// ms or µs, say) it fails and an explicit unit is needed.
func toTime(raw any, unit time.Duration) (Value, error) {
	switch v := raw.(type) {
	case time.Time:
		return timeValue(v), nil
	case Date:
		return timeValue(dateTime(v)), nil
	case string:
		for _, layout := range timeLayouts {
			if t, err := time.Parse(layout, v); err == nil {
				return timeValue(t), nil
			}
		}
		// An epoch number sent as text, as tools that quote 64-bit integers
		// for JavaScript's sake do. No ISO-8601 text is a bare number.
		if l, ok := parseNumLit(v); ok {
			t, err := epochLit(l, unit)
			if err != nil {
				return Value{}, fmt.Errorf("%s: %w", quoteShort(v), err)
			}
			return timeValue(t), nil
		}
		return Value{}, fmt.Errorf("%s is not an ISO-8601 timestamp or an epoch number", quoteShort(v))
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return timeValue(epochInt(n, unit)), nil
		}
	case int64:
		return timeValue(epochInt(v, unit)), nil
	case int:
		return timeValue(epochInt(int64(v), unit)), nil
	case int32:
		return timeValue(epochInt(int64(v), unit)), nil
	}
	n, ok, err := toNumber(raw)
	if err != nil {
		return Value{}, err
	}
	if !ok {
		return Value{}, cannotConvert(raw)
	}
	t, err := epochLit(n.lit, unit)
	if err != nil {
		return Value{}, fmt.Errorf("%s: %w", n.text, err)
	}
	return timeValue(t), nil
}

// epochInt reads n in unit, or in the unit its magnitude suggests when unit
// is zero (see toTime).
func epochInt(n int64, unit time.Duration) time.Time {
	if unit == 0 {
		a := uint64(n)
		if n < 0 {
			a = -a
		}
		switch {
		case a < 1e11:
			unit = time.Second
		case a < 1e14:
			unit = time.Millisecond
		case a < 1e17:
			unit = time.Microsecond
		default:
			unit = time.Nanosecond
		}
	}
	// Split into seconds first: n×unit in nanoseconds overflows int64 for
	// epoch seconds past 2262.
	perSec := int64(time.Second / unit)
	return time.Unix(n/perSec, n%perSec*int64(unit))
}

// epochLit handles fractional and out-of-int64 epochs exactly, rounding below
// a nanosecond half away from zero.
func epochLit(l numLit, unit time.Duration) (time.Time, error) {
	whole := 0 // digits before the point
	if l.digits != "" {
		whole = len(l.digits) + l.exp
	}
	scale := 0 // decimal digits from the unit to nanoseconds
	switch {
	case unit != 0:
		for u := unit; u < time.Second; u *= 10 {
			scale++
		}
		scale = 9 - scale
	case whole <= 11:
		scale = 9
	case whole <= 14:
		scale = 6
	case whole <= 17:
		scale = 3
	}
	u, err := l.unscaled(scale, true)
	if err != nil {
		return time.Time{}, err
	}
	secText, nsText := "0", u
	if len(u) > 9 {
		secText, nsText = u[:len(u)-9], u[len(u)-9:]
	}
	sec, err := strconv.ParseInt(secText, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("out of the timestamp range")
	}
	ns, _ := strconv.ParseInt(nsText, 10, 64)
	if l.neg {
		sec, ns = -sec, -ns
	}
	return time.Unix(sec, ns), nil
}

func cannotConvert(raw any) error { return fmt.Errorf("cannot convert a %T", raw) }

// quoteShort quotes s for an error message, cut so that a huge value does not
// end up whole in a DLQ header.
func quoteShort(s string) string { return strconv.Quote(shorten(s)) }

func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// numLit is an exactly parsed decimal literal: (-1)^neg × digits × 10^exp.
type numLit struct {
	neg    bool
	digits string // no leading or trailing zeros; "" for zero
	exp    int
}

// parseNumLit reads [+-]digits[.digits][(e|E)[+-]digits], with digits on at
// least one side of the point. Anything else (spaces, hex, inf) is rejected.
func parseNumLit(s string) (numLit, bool) {
	var l numLit
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		l.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart, frac := s[start:i], ""
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[start:i]
	}
	if intPart == "" && frac == "" {
		return numLit{}, false
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start = i
		for i < len(s) && isDigit(s[i]) {
			if exp < 1e9 { // saturate: anything this large is out of range anyway
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return numLit{}, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return numLit{}, false
	}
	digits := intPart
	if frac != "" {
		digits = intPart + frac
	}
	exp -= len(frac)
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	if digits == "" {
		return numLit{}, true
	}
	l.digits, l.exp = digits, exp
	return l, true
}

// unscaled returns |l| × 10^scale as a digit string without leading zeros.
// When that drops non-zero digits it fails with errInexact, or with round it
// rounds half away from zero.
func (l numLit) unscaled(scale int, round bool) (string, error) {
	if l.digits == "" {
		return "0", nil
	}
	shift := l.exp + scale
	if shift >= 0 {
		if len(l.digits)+shift > maxDigits {
			return "", errTooLarge
		}
		return l.digits + strings.Repeat("0", shift), nil
	}
	// digits has no trailing zeros, so dropping any of them loses a non-zero one.
	if !round {
		return "", errInexact
	}
	drop := -shift
	if drop > len(l.digits) {
		return "0", nil
	}
	kept := l.digits[:len(l.digits)-drop]
	if l.digits[len(l.digits)-drop] >= '5' {
		kept = increment(kept)
	}
	if kept == "" {
		return "0", nil
	}
	return kept, nil
}

// increment adds one to a decimal digit string ("" is zero).
func increment(s string) string {
	b := []byte(s)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// formatFixed places the point scale digits from the right of the unscaled
// digits u; zero carries no sign, so -0.00 and 0.00 are one value.
func formatFixed(neg bool, u string, scale int) string {
	if u == "0" {
		neg = false
	}
	if pad := scale + 1 - len(u); scale > 0 && pad > 0 {
		u = strings.Repeat("0", pad) + u
	}
	whole := len(u) - scale
	b := make([]byte, 0, len(u)+2)
	if neg {
		b = append(b, '-')
	}
	b = append(b, u[:whole]...)
	if scale > 0 {
		b = append(b, '.')
		b = append(b, u[whole:]...)
	}
	return string(b)
}
