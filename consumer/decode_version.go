package consumer

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/recon-dev/recon/compare"
)

// versionOf reads a record's version per spec. row is the decoded row (the
// before image for deletes), after logical conversion, so a timestamp column
// is already a time.Time when the schema wrapper says so.
func versionOf(spec compare.VersionSpec, env *envelopeWire, row map[string]any, m Meta) (compare.Version, *DecodeError) {
	switch spec.Kind {
	case compare.VersionLSN:
		a, derr := sourceUint("source.lsn", env.Source.LSN)
		return compare.Version{A: a}, derr
	case compare.VersionPosition:
		return position(&env.Source)
	case compare.VersionField:
		return fieldVersion(spec.Field, row)
	case compare.VersionOffset:
		if m.Offset < 0 {
			return compare.Version{}, decodeErr(ReasonBadValue, "offset %d is negative", m.Offset)
		}
		// Offset+1: the zero Version means "none", and offset 0 is a change.
		return compare.Version{A: uint64(m.Offset) + 1}, nil
	}
	return compare.Version{}, nil
}

func sourceUint(name string, n json.Number) (uint64, *DecodeError) {
	if n == "" {
		return 0, decodeErr(ReasonMissingVersion, "%s is missing or null", name)
	}
	u, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		return 0, decodeErr(ReasonBadValue, "%s %.40q: want a non-negative integer", name, n)
	}
	return u, nil
}

// position orders MySQL rows by (binlog file number, pos, row): a gtid names
// a whole transaction, not a row.
func position(s *sourceWire) (compare.Version, *DecodeError) {
	if s.File == "" {
		return compare.Version{}, decodeErr(ReasonMissingVersion, "source.file is missing or null")
	}
	dot := strings.LastIndexByte(s.File, '.')
	file, err := strconv.ParseUint(s.File[dot+1:], 10, 64)
	if err != nil {
		return compare.Version{}, decodeErr(ReasonBadValue, "source.file %.60q: want a numeric suffix like mysql-bin.000003", s.File)
	}
	pos, derr := sourceUint("source.pos", s.Pos)
	if derr != nil {
		return compare.Version{}, derr
	}
	var row uint64
	if s.Row != "" { // absent in some snapshot events: the first row
		if row, derr = sourceUint("source.row", s.Row); derr != nil {
			return compare.Version{}, derr
		}
	}
	return compare.Version{A: file, B: pos, C: row}, nil
}

// fieldVersion reads a version from a row column: a non-negative integer
// (number or numeric string) as is, an instant as Unix microseconds.
func fieldVersion(name string, row map[string]any) (compare.Version, *DecodeError) {
	v, ok := row[name]
	switch v.(type) {
	case nil:
		if !ok {
			return compare.Version{}, decodeErr(ReasonMissingVersion, "version field %q is missing", name)
		}
		return compare.Version{}, decodeErr(ReasonMissingVersion, "version field %q is null", name)
	case compare.Unavailable:
		return compare.Version{}, decodeErr(ReasonMissingVersion, "version field %q was not sent (unavailable placeholder)", name)
	}
	a, reason := versionValue(v)
	if reason != "" {
		return compare.Version{}, decodeErr(ReasonBadValue, "version field %q: %s", name, reason)
	}
	return compare.Version{A: a}, nil
}

// versionValue returns the version number of v, or why v has none.
func versionValue(v any) (uint64, string) {
	switch x := v.(type) {
	case json.Number:
		return uintText(string(x))
	case string:
		if u, reason := uintText(x); reason == "" {
			return u, ""
		}
		t, err := parseISO(x)
		if err != nil {
			return 0, "want an integer or an ISO-8601 timestamp, got " + strconv.Quote(clip(x))
		}
		return instant(t)
	case time.Time:
		return instant(x)
	case compare.Date:
		return instant(time.Unix(int64(x)*86400, 0))
	case compare.Decimal:
		return decimalVersion(x)
	}
	return 0, "want an integer or a timestamp, got " + jsonKind(v)
}

// decimalVersion accepts integral decimals (a NUMERIC version column).
func decimalVersion(d compare.Decimal) (uint64, string) {
	if d.Unscaled == nil || d.Unscaled.Sign() < 0 {
		return 0, "decimal version is empty or negative"
	}
	n := new(big.Int).Set(d.Unscaled)
	switch {
	case n.Sign() == 0:
	case d.Scale > 0:
		// A non-zero multiple of 10^scale is at least 10^scale > 2^(3·scale);
		// checking first keeps a hostile scale from costing a huge power of ten.
		if int64(n.BitLen()) <= 3*int64(d.Scale) {
			return 0, "decimal version is not an integer"
		}
		var r big.Int
		if n.QuoRem(n, pow10(int64(d.Scale)), &r); r.Sign() != 0 {
			return 0, "decimal version is not an integer"
		}
	case d.Scale < 0:
		if d.Scale < -20 {
			return 0, "decimal version is too large"
		}
		n.Mul(n, pow10(-int64(d.Scale)))
	}
	if !n.IsUint64() {
		return 0, "decimal version is too large"
	}
	return n.Uint64(), ""
}

func uintText(s string) (uint64, string) {
	u, err := strconv.ParseUint(s, 10, 64)
	if err == nil {
		return u, ""
	}
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return 0, "negative integer " + s
	}
	return 0, "not a non-negative integer: " + strconv.Quote(clip(s))
}

func instant(t time.Time) (uint64, string) {
	us := t.UnixMicro()
	if us < 0 {
		return 0, "timestamp " + t.Format(time.RFC3339Nano) + " is before 1970"
	}
	return uint64(us), ""
}

// clip keeps error messages (and DLQ headers) short whatever the input.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
