package compare

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FieldType is a column type from compare.types: what a value must normalize to
// when its message does not say (no schema wrapper, a MySQL-style target).
type FieldType struct {
	Kind  Kind  // KindDecimal, KindTime, KindInt, KindString, KindBool, KindFloat or KindUUID
	Scale int32 // for KindDecimal
	// Unit is the unit of a KindTime column's plain epoch numbers; zero means
	// "guess from the magnitude" (see toTime). Typed instants (time.Time) and
	// ISO-8601 text are read the same whatever the unit.
	Unit time.Duration
}

// timestampUnits are the timestamp types with an explicit epoch unit, for
// columns whose instants lie where the magnitude guess fails (within about
// three years of 1970, or thousands of years away). The unit applies to every
// system of the dataset that sends the column as a plain number.
var timestampUnits = []struct {
	name string
	unit time.Duration
}{
	{"timestamp_s", time.Second},
	{"timestamp_ms", time.Millisecond},
	{"timestamp_us", time.Microsecond},
	{"timestamp_ns", time.Nanosecond},
}

// ParseFieldType reads decimal(S), timestamp, timestamp_s, timestamp_ms,
// timestamp_us, timestamp_ns, int, string, bool, float or uuid.
func ParseFieldType(s string) (FieldType, error) {
	switch s {
	case "timestamp":
		return FieldType{Kind: KindTime}, nil
	case "int":
		return FieldType{Kind: KindInt}, nil
	case "string":
		return FieldType{Kind: KindString}, nil
	case "bool":
		return FieldType{Kind: KindBool}, nil
	case "float":
		return FieldType{Kind: KindFloat}, nil
	case "uuid":
		return FieldType{Kind: KindUUID}, nil
	}
	for _, u := range timestampUnits {
		if s == u.name {
			return FieldType{Kind: KindTime, Unit: u.unit}, nil
		}
	}
	if inner, ok := strings.CutPrefix(s, "decimal("); ok {
		if digits, ok := strings.CutSuffix(inner, ")"); ok {
			n, err := strconv.ParseInt(digits, 10, 32)
			if err == nil && n >= 0 && n <= 38 {
				return FieldType{Kind: KindDecimal, Scale: int32(n)}, nil
			}
		}
	}
	return FieldType{}, fmt.Errorf("unknown type %q: want decimal(S) with 0<=S<=38, timestamp, timestamp_s, timestamp_ms, timestamp_us, timestamp_ns, int, string, bool, float or uuid", s)
}

// String renders t as written in compare.types.
func (t FieldType) String() string {
	switch t.Kind {
	case KindDecimal:
		return "decimal(" + strconv.Itoa(int(t.Scale)) + ")"
	case KindTime:
		for _, u := range timestampUnits {
			if t.Unit == u.unit {
				return u.name
			}
		}
		return "timestamp"
	case KindInt:
		return "int"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	case KindFloat:
		return "float"
	case KindUUID:
		return "uuid"
	}
	return t.Kind.String()
}

// VersionKind says where a system's per-key version comes from.
type VersionKind uint8

const (
	VersionLSN      VersionKind = iota + 1 // Debezium Postgres source.lsn
	VersionPosition                        // MySQL binlog source.file suffix, pos, row
	VersionField                           // a row field: integer or timestamp
	VersionOffset                          // the Kafka offset of the record
)

// VersionSpec is a parsed `version:` or `lineage:` setting.
type VersionSpec struct {
	Kind  VersionKind
	Field string // for VersionField
}

// ParseVersionSpec reads lsn, position, offset or field:<name>.
func ParseVersionSpec(s string) (VersionSpec, error) {
	switch s {
	case "lsn":
		return VersionSpec{Kind: VersionLSN}, nil
	case "position":
		return VersionSpec{Kind: VersionPosition}, nil
	case "offset":
		return VersionSpec{Kind: VersionOffset}, nil
	}
	if f, ok := strings.CutPrefix(s, "field:"); ok && f != "" {
		return VersionSpec{Kind: VersionField, Field: f}, nil
	}
	return VersionSpec{}, fmt.Errorf("unknown version %q: want lsn, position, offset or field:<name>", s)
}

// ParseLineageSpec reads a `lineage:` setting: empty (none) or field:<name>.
func ParseLineageSpec(s string) (VersionSpec, error) {
	if s == "" {
		return VersionSpec{}, nil
	}
	if f, ok := strings.CutPrefix(s, "field:"); ok && f != "" {
		return VersionSpec{Kind: VersionField, Field: f}, nil
	}
	return VersionSpec{}, fmt.Errorf("unknown lineage %q: want field:<name>", s)
}
