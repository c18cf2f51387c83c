package compare

import (
	"encoding/hex"
	"fmt"
)

// Kind is the normalized type of a Value.
type Kind uint8

const (
	KindNull Kind = iota
	KindBool
	KindInt     // Text: base-10 integer, any size, no leading zeros, "-" for negatives
	KindDecimal // Text: fixed-point with exactly the column's scale, e.g. "1234.50"
	KindFloat   // Text: strconv.FormatFloat(f, 'g', -1, 64) after tolerance quantization
	KindString
	KindTime      // Text: RFC 3339 in UTC with trailing fractional zeros trimmed
	KindDate      // Text: 2006-01-02
	KindTimeOfDay // Text: 15:04:05.999999999
	KindBytes     // Text: base64 std encoding
	KindJSON      // Text: canonical JSON (sorted object keys, no spaces)
	// KindUUID Text: lower-case 8-4-4-4-12 hex. Appended last: kinds are
	// stored and hashed by number, so existing numbers must never change.
	KindUUID
)

var kindNames = [...]string{"null", "bool", "int", "decimal", "float", "string", "time", "date", "time_of_day", "bytes", "json", "uuid"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Value is a normalized column value. Two values are equal exactly when their
// Kind and Text are equal: normalization puts every representation of the same
// datum into the same canonical text.
type Value struct {
	Kind Kind
	Text string
}

// Row is a normalized row, by column name after rename.
type Row map[string]Value

// Key is a canonical key: the configured key fields after mapping, normalized,
// in configured order. String is its deterministic encoding.
type Key struct {
	Fields []string
	Values []Value
}

// Digest is a keyed 128-bit hash of a normalized row.
type Digest [16]byte

func (d Digest) IsZero() bool { return d == Digest{} }

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText renders the zero digest (no row) as "" so events say "none"
// rather than a hash of nothing.
func (d Digest) MarshalText() ([]byte, error) {
	if d.IsZero() {
		return []byte{}, nil
	}
	return []byte(d.String()), nil
}

func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Digest{}
		return nil
	}
	if len(b) != 32 {
		return fmt.Errorf("digest %q: want 32 hex characters", b)
	}
	_, err := hex.Decode(d[:], b)
	return err
}
