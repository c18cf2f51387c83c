package compare

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Op is what a change did to its key. Snapshot reads are upserts.
type Op uint8

const (
	OpUpsert Op = iota + 1
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpUpsert:
		return "upsert"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// Version is a totally ordered position of one change of one key in one system.
// LSNs, offsets and numeric or time row fields use A alone; a MySQL binlog
// position is (file suffix, pos, row). The zero Version is "none".
type Version struct {
	A, B, C uint64
}

// IsZero reports whether v is the zero (absent) version.
func (v Version) IsZero() bool { return v == Version{} }

// Compare returns -1, 0 or +1 as v is before, equal to or after w.
func (v Version) Compare(w Version) int {
	switch {
	case v.A != w.A:
		return cmpU(v.A, w.A)
	case v.B != w.B:
		return cmpU(v.B, w.B)
	default:
		return cmpU(v.C, w.C)
	}
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// String renders v as "A" or "A:B:C"; ParseVersion reads it back.
func (v Version) String() string {
	if v.B == 0 && v.C == 0 {
		return strconv.FormatUint(v.A, 10)
	}
	return fmt.Sprintf("%d:%d:%d", v.A, v.B, v.C)
}

// ParseVersion reads the form written by Version.String.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 1 && len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want N or N:N:N", s)
	}
	var out [3]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %w", s, err)
		}
		out[i] = n
	}
	return Version{out[0], out[1], out[2]}, nil
}

func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

func (v *Version) UnmarshalText(b []byte) error {
	p, err := ParseVersion(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// Raw values are what decoders hand to Normalize: the JSON scalars (nil, bool,
// string, json.Number), nested map[string]any / []any, []byte, and the typed
// values below for Kafka Connect and Debezium logical types.

// Decimal is an exact decimal: Unscaled × 10^-Scale.
type Decimal struct {
	Unscaled *big.Int
	Scale    int32
}

// Timestamp is an instant (Connect Timestamp, Debezium Micro/NanoTimestamp,
// ZonedTimestamp); keep it as time.Time in UTC.

// Date is a calendar day as days since the Unix epoch (io.debezium.time.Date).
type Date int32

// TimeOfDay is a time past midnight (Debezium Time / MicroTime / NanoTime).
type TimeOfDay time.Duration

// Unavailable stands for Debezium's unavailable.value.placeholder: the column
// did not change and its value was not sent (Postgres TOAST).
type Unavailable struct{}

// UnavailablePlaceholder is Debezium's default unavailable.value.placeholder.
const UnavailablePlaceholder = "__debezium_unavailable_value"

// ChangeEvent is one decoded, normalized change of one key in one system.
type ChangeEvent struct {
	Dataset   string
	System    string // the source's or a target's name
	Topic     string
	Partition int32
	Offset    int64

	Key     Key
	Op      Op
	Version Version
	// Lineage is the source version a target row says it was derived from; zero if none.
	Lineage Version
	// Row is the normalized row after rename and ignore; nil for deletes.
	Row Row
	// Unchanged names the columns sent as the TOAST placeholder: keep their previous values.
	Unchanged []string
	// Cols are the Row's column hashes (Hasher.Columns), computed by the
	// decoding stage when it can so the single writer does not have to.
	Cols Columns
	// Digest is Cols' digest, also computed while decoding, when no column
	// is Unchanged; zero otherwise.
	Digest Digest
	// LazyRow, when set and Row is nil, builds Row on demand (FullRow):
	// decoding computes only the column hashes of rows the engine seldom
	// keeps, such as a target's.
	LazyRow func() (Row, error)
	// EventTime is when the change happened in its database (source.ts_ms), or the
	// record timestamp when the format carries none.
	EventTime time.Time
}

// FullRow returns the normalized row, building it with LazyRow if need be;
// nil for deletes.
func (ev *ChangeEvent) FullRow() (Row, error) {
	if ev.Row == nil && ev.LazyRow != nil {
		row, err := ev.LazyRow()
		if err != nil {
			return nil, err
		}
		ev.Row, ev.LazyRow = row, nil
	}
	return ev.Row, nil
}
