package compare

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// This file reads the forms logical types take when nothing says what they
// are: a Connect Decimal without its schema wrapper is only base64, a
// VariableScaleDecimal only a {"scale","value"} object, goavro hands decimals
// over as *big.Rat, and UUIDs come in any case and several spellings.

// decimalBytes decides whether s, a string in a decimal(scale) column, is the
// base64 of a Connect Decimal's unscaled bytes (Debezium's default
// decimal.handling.mode=precise, sent without the schema wrapper). Base64 and
// decimal text overlap only for strings made of digits, a leading '+' and an
// exponent, without a point. At a scale above zero decimal text always has a
// point (Debezium's string mode, Postgres and MySQL all write "1234.50", never
// "1234"), so a padded base64 string without one is read as bytes: otherwise
// about one 3-byte Decimal in 1,600 (its four base64 characters all digits)
// would be misread as a number. At scale 0 "1234" is ordinary text, so a
// string that reads as a number is a number: a scale-0 Decimal whose base64
// happens to be all digits is misread, and shows up as a conflict, not as a
// false match.
func decimalBytes(s string, scale int) ([]byte, bool) {
	if s == "" || len(s)%4 != 0 {
		return nil, false
	}
	if _, isNum := parseNumLit(s); isNum && (scale == 0 || strings.Contains(s, ".")) {
		return nil, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, false
	}
	return b, true
}

// twosComplement reads big-endian two's-complement bytes, as Connect writes
// a Decimal's unscaled value.
func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// varScaleDecimal reads io.debezium.data.VariableScaleDecimal sent without
// the schema that names it: an object of exactly "scale" and "value" (base64).
// ok is false for any other object, which is then not a number at all.
func varScaleDecimal(m map[string]any) (d Decimal, ok bool, err error) {
	if len(m) != 2 {
		return Decimal{}, false, nil
	}
	scaleRaw, ok1 := m["scale"]
	valueRaw, ok2 := m["value"].(string)
	if !ok1 || !ok2 {
		return Decimal{}, false, nil
	}
	var scale int64
	switch sc := scaleRaw.(type) {
	case json.Number:
		scale, err = strconv.ParseInt(string(sc), 10, 32)
	default:
		s, isInt := intText(sc)
		if !isInt {
			return Decimal{}, true, fmt.Errorf("variable-scale decimal: scale %v is not an integer", sc)
		}
		scale, err = strconv.ParseInt(s, 10, 32)
	}
	if err != nil {
		return Decimal{}, true, fmt.Errorf("variable-scale decimal: scale: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(valueRaw)
	if err != nil {
		return Decimal{}, true, fmt.Errorf("variable-scale decimal: value: %w", err)
	}
	return Decimal{Unscaled: twosComplement(b), Scale: int32(scale)}, true, nil
}

// maxRatScale bounds the fraction digits of a *big.Rat written out exactly.
const maxRatScale = maxDigits

// ratDecimal writes r, as goavro decodes an Avro decimal, as a Decimal at the
// fewest fraction digits that hold it exactly. A fraction with no finite
// decimal form (1/3) is an error: no decimal column holds it.
func ratDecimal(r *big.Rat) (Decimal, error) {
	if r == nil {
		return Decimal{Unscaled: new(big.Int)}, nil
	}
	den := new(big.Int).Set(r.Denom())
	twos := den.TrailingZeroBits()
	den.Rsh(den, twos)
	fives := uint(0)
	five, q, m := big.NewInt(5), new(big.Int), new(big.Int)
	for den.Cmp(big.NewInt(1)) != 0 {
		q.QuoRem(den, five, m)
		if m.Sign() != 0 {
			return Decimal{}, fmt.Errorf("%s has no finite decimal form", shorten(r.RatString()))
		}
		den.Set(q)
		fives++
		if fives > maxRatScale {
			return Decimal{}, errTooLarge
		}
	}
	scale := max(twos, fives)
	if scale > maxRatScale {
		return Decimal{}, errTooLarge
	}
	// num × 10^scale / den is whole: den divides 10^scale.
	n := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	n.Quo(n, r.Denom())
	return Decimal{Unscaled: n, Scale: int32(scale)}, nil
}

var errNotUUID = errors.New("want a UUID: 32 hex digits, with or without dashes, braces or urn:uuid:, or 16 bytes")

// toUUID writes any spelling of a UUID as lower-case 8-4-4-4-12 hex: Postgres
// and Debezium's io.debezium.data.Uuid send lower case, SQL Server and .NET
// upper case, MySQL stores CHAR(36) as written, BINARY(16) as 16 bytes (base64
// in JSON), and some tools add braces or a urn:uuid: prefix.
func toUUID(raw any) (Value, error) {
	switch v := raw.(type) {
	case string:
		if b, ok := uuidText(v); ok {
			return uuidValue(b), nil
		}
		// A BINARY(16) column in JSON: base64 of 16 bytes is 24 characters,
		// which no hex spelling has.
		if len(v) == 24 {
			if b, err := base64.StdEncoding.Strict().DecodeString(v); err == nil && len(b) == 16 {
				return uuidValue([16]byte(b)), nil
			}
		}
		return Value{}, fmt.Errorf("%s: %w", quoteShort(v), errNotUUID)
	case []byte:
		if len(v) == 16 {
			return uuidValue([16]byte(v)), nil
		}
		return Value{}, fmt.Errorf("%d bytes: %w", len(v), errNotUUID)
	case [16]byte:
		return uuidValue(v), nil
	}
	return Value{}, cannotConvert(raw)
}

// uuidText parses the text spellings of a UUID, in any case.
func uuidText(s string) ([16]byte, bool) {
	var out [16]byte
	if len(s) > 9 && strings.EqualFold(s[:9], "urn:uuid:") {
		s = s[9:]
	}
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return out, false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	case 32:
	default:
		return out, false
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, false
	}
	return out, true
}

func uuidValue(b [16]byte) Value {
	var buf [36]byte
	hex.Encode(buf[0:8], b[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], b[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], b[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], b[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], b[10:])
	return Value{Kind: KindUUID, Text: string(buf[:])}
}
