package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/recon-dev/recon/compare"
)

// ErrCorrupt is wrapped by every error about a stored record that cannot be
// decoded: a truncated or garbage value, or a key that does not fit the layout.
var ErrCorrupt = errors.New("corrupt state record")

// The KeyState codec is read and written once per CDC event, so it is a small
// hand-rolled binary format rather than JSON or gob: no reflection, one
// allocation for all strings on decode, deterministic output.
//
// Version 1, in order (uvarint/varint are encoding/binary's):
//
//	byte      codec version (1)
//	key       uvarint n, n × string field; uvarint n, n × value
//	byte      flags: 1 = has source head
//	head      source head, if flagged
//	uvarint   SourceChanges
//	uvarint   n, n × history entry
//	uvarint   n, n × (string column, value), columns strictly ascending
//	uvarint   n, n × (string target, target state), names strictly ascending
//
//	string    uvarint length, bytes
//	value     byte kind, string text
//	version   uvarint A, uvarint B, uvarint C
//	time      varint unix nanoseconds; 0 is the zero time
//	head      version, 16-byte digest, byte flags (1 = deleted), time event,
//	          time seen, varint partition, uvarint n, n × (string column,
//	          8-byte little-endian hash), columns strictly ascending
//	history   version, 16-byte digest, byte flags (1 = deleted), time event, time seen
//	target    byte flags (1 = nil entry, 2 = has head, 4 = local write, 8 = has
//	          open divergence, 16 = has row), head if flagged, uvarint Changes,
//	          version Lineage, version Reflects, time Deadline, divergence if
//	          flagged, row if flagged: uvarint n (> 0), n × (string column,
//	          value), columns strictly ascending
//	divergence string ID, string Kind, time OpenedAt, time DetectedAt,
//	          version SourceVersion, string RepairID
//
// Flag 16 and the target row came after version 1 was written, without a
// version bump: a state stored before has no row, and reads as before.
//
// Decisions the format makes for its callers:
//   - times come back in UTC, whatever location they were written in, and
//     without a monotonic reading; the instant is exact to the nanosecond;
//   - the Unix epoch itself reads back as the zero time, and times outside
//     1678..2262 (the int64 nanosecond range) are clamped to its ends;
//   - empty slices and maps come back nil;
//   - decoding accepts exactly what encoding produces (minimal varints,
//     ascending map keys, no unknown flags, no trailing bytes), so
//     encode(decode(b)) == b for every b that decodes.
const keyStateCodecV1 = 1

const (
	ksHasSource = 1 << iota
)

const (
	headDeleted = 1 << iota
)

const (
	tsNil = 1 << iota
	tsHasHead
	tsLocalWrite
	tsHasOpen
	tsHasRow
	tsAll = tsNil | tsHasHead | tsLocalWrite | tsHasOpen | tsHasRow
)

// Minimum encoded sizes, used to refuse counts that the remaining input
// cannot hold before anything is allocated for them.
const (
	minString  = 1
	minValue   = 1 + minString
	minVersion = 3
	minTime    = 1
	minHistory = minVersion + 16 + 1 + 2*minTime
	minRowCol  = minString + minValue
	minTarget  = minString + 1
	minHashCol = minString + 8
)

// encoder appends encodings to buf; keys is scratch for sorting map keys so
// that a reused encoder does not allocate per map.
type encoder struct {
	buf  []byte
	keys []string
}

func appendKeyState(dst []byte, ks *KeyState) []byte {
	e := encoder{buf: dst}
	e.keyState(ks)
	return e.buf
}

func (e *encoder) keyState(ks *KeyState) {
	e.buf = append(e.buf, keyStateCodecV1)
	e.uvarint(uint64(len(ks.Key.Fields)))
	for _, f := range ks.Key.Fields {
		e.string(f)
	}
	e.uvarint(uint64(len(ks.Key.Values)))
	for _, v := range ks.Key.Values {
		e.value(v)
	}
	var flags byte
	if ks.Source != nil {
		flags |= ksHasSource
	}
	e.buf = append(e.buf, flags)
	if ks.Source != nil {
		e.head(ks.Source)
	}
	e.uvarint(ks.SourceChanges)
	e.uvarint(uint64(len(ks.History)))
	for i := range ks.History {
		h := &ks.History[i]
		e.version(h.Version)
		e.buf = append(e.buf, h.Digest[:]...)
		e.buf = append(e.buf, boolFlag(h.Deleted, headDeleted))
		e.time(h.EventTime)
		e.time(h.SeenAt)
	}
	e.uvarint(uint64(len(ks.SourceRow)))
	if !e.rowInHeadOrder(ks) {
		cols, mark := sortedKeys(e, ks.SourceRow)
		for _, col := range cols {
			e.string(col)
			e.value(ks.SourceRow[col])
		}
		e.keys = e.keys[:mark]
	}
	e.uvarint(uint64(len(ks.Targets)))
	names, mark := sortedKeys(e, ks.Targets)
	for _, name := range names {
		e.string(name)
		e.target(ks.Targets[name])
	}
	e.keys = e.keys[:mark]
}

// rowInHeadOrder encodes the source row in the order of the source head's
// column hashes, which are sorted by name and almost always name the same
// columns: it spares sorting the row's names for every write. It writes
// nothing and returns false when the names differ.
func (e *encoder) rowInHeadOrder(ks *KeyState) bool {
	if ks.Source == nil || len(ks.Source.Cols) != len(ks.SourceRow) {
		return false
	}
	mark := len(e.buf)
	for _, c := range ks.Source.Cols {
		v, ok := ks.SourceRow[c.Name]
		if !ok {
			e.buf = e.buf[:mark]
			return false
		}
		e.string(c.Name)
		e.value(v)
	}
	return true
}

// sortedKeys returns m's keys sorted, stacked on e.keys so that a reused
// encoder does not allocate. The caller releases them with e.keys =
// e.keys[:mark] once done; nested calls (Targets, then a head's Cols) push
// above and pop before the outer walk continues.
func sortedKeys[M ~map[string]V, V any](e *encoder, m M) (keys []string, mark int) {
	mark = len(e.keys)
	e.keys = slices.AppendSeq(e.keys, maps.Keys(m))
	keys = e.keys[mark:]
	slices.Sort(keys)
	return keys, mark
}

func (e *encoder) target(t *TargetState) {
	if t == nil {
		e.buf = append(e.buf, tsNil)
		return
	}
	flags := boolFlag(t.Head != nil, tsHasHead) | boolFlag(t.LocalWrite, tsLocalWrite) | boolFlag(t.Open != nil, tsHasOpen) |
		boolFlag(len(t.Row) > 0, tsHasRow)
	e.buf = append(e.buf, flags)
	if t.Head != nil {
		e.head(t.Head)
	}
	e.uvarint(t.Changes)
	e.version(t.Lineage)
	e.version(t.Reflects)
	e.time(t.Deadline)
	if d := t.Open; d != nil {
		e.string(d.ID)
		e.string(d.Kind)
		e.time(d.OpenedAt)
		e.time(d.DetectedAt)
		e.version(d.SourceVersion)
		e.string(d.RepairID)
	}
	if len(t.Row) > 0 {
		e.uvarint(uint64(len(t.Row)))
		cols, mark := sortedKeys(e, t.Row)
		for _, col := range cols {
			e.string(col)
			e.value(t.Row[col])
		}
		e.keys = e.keys[:mark]
	}
}

func (e *encoder) head(h *Head) {
	e.version(h.Version)
	e.buf = append(e.buf, h.Digest[:]...)
	e.buf = append(e.buf, boolFlag(h.Deleted, headDeleted))
	e.time(h.EventTime)
	e.time(h.SeenAt)
	e.buf = binary.AppendVarint(e.buf, int64(h.Partition))
	// Cols are kept sorted by name (compare.Columns), as decoding requires.
	e.uvarint(uint64(len(h.Cols)))
	for _, c := range h.Cols {
		e.string(c.Name)
		e.buf = binary.LittleEndian.AppendUint64(e.buf, c.Hash)
	}
}

func boolFlag(b bool, f byte) byte {
	if b {
		return f
	}
	return 0
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) value(v compare.Value) {
	e.buf = append(e.buf, byte(v.Kind))
	e.string(v.Text)
}

func (e *encoder) version(v compare.Version) {
	e.uvarint(v.A)
	e.uvarint(v.B)
	e.uvarint(v.C)
}

var (
	minTimeNanos = time.Unix(0, math.MinInt64)
	maxTimeNanos = time.Unix(0, math.MaxInt64)
)

// safeUnixSeconds bounds the instants whose UnixNano is surely defined; the
// cheap check on Unix() spares Before/After for every time but absurd ones.
const safeUnixSeconds = math.MaxInt64/int64(time.Second) - 1

func (e *encoder) time(t time.Time) {
	var n int64
	switch sec := t.Unix(); {
	case t.IsZero():
	case sec > -safeUnixSeconds && sec < safeUnixSeconds:
		n = t.UnixNano()
	case t.Before(minTimeNanos):
		n = math.MinInt64
	case t.After(maxTimeNanos):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	e.buf = binary.AppendVarint(e.buf, n)
}

// decoder reads from s, a string copy of the input: every decoded string is a
// substring of it, so a whole KeyState costs one string allocation and the
// input buffer (often Badger's) is not retained. err is sticky: after the
// first error every read returns a zero value and the caller checks err once.
type decoder struct {
	s   string
	off int
	err error
}

func decodeKeyState(b []byte) (*KeyState, error) {
	d := decoder{s: string(b)}
	ks := d.keyState()
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return ks, nil
}

func (d *decoder) keyState() *KeyState {
	if v := d.byte("codec version"); d.err == nil && v != keyStateCodecV1 {
		d.fail(fmt.Sprintf("unknown key state codec version %d", v))
	}
	// The source head is allocated with its state: one allocation fewer
	// per decode, and a key state without a source head is rare.
	a := &struct {
		ks  KeyState
		src Head
	}{}
	ks := &a.ks
	if n := d.count("key fields", minString); n > 0 {
		ks.Key.Fields = make([]string, n)
		for i := range ks.Key.Fields {
			ks.Key.Fields[i] = d.string()
		}
	}
	if n := d.count("key values", minValue); n > 0 {
		ks.Key.Values = make([]compare.Value, n)
		for i := range ks.Key.Values {
			ks.Key.Values[i] = d.value()
		}
	}
	if d.flags("key state flags", ksHasSource)&ksHasSource != 0 {
		ks.Source = &a.src
		d.head(ks.Source)
	}
	ks.SourceChanges = d.uvarint()
	if n := d.count("history", minHistory); n > 0 {
		ks.History = make([]HistoryEntry, n)
		for i := range ks.History {
			h := &ks.History[i]
			h.Version = d.version()
			h.Digest = d.digest()
			h.Deleted = d.flags("history flags", headDeleted)&headDeleted != 0
			h.EventTime = d.time()
			h.SeenAt = d.time()
		}
	}
	ks.SourceRow = d.row("source row")
	if n := d.count("targets", minTarget); n > 0 {
		ks.Targets = make(map[string]*TargetState, n)
		prev := ""
		for i := 0; i < n && d.err == nil; i++ {
			name := d.string()
			d.ascending("target", i, prev, name)
			ks.Targets[name] = d.target()
			prev = name
		}
	}
	return ks
}

func (d *decoder) target() *TargetState {
	flags := d.flags("target flags", tsAll)
	if flags&tsNil != 0 {
		if flags != tsNil {
			d.fail("nil target with other flags")
		}
		return nil
	}
	a := &struct {
		t TargetState
		h Head
	}{}
	t := &a.t
	t.LocalWrite = flags&tsLocalWrite != 0
	if flags&tsHasHead != 0 {
		t.Head = &a.h
		d.head(t.Head)
	}
	t.Changes = d.uvarint()
	t.Lineage = d.version()
	t.Reflects = d.version()
	t.Deadline = d.time()
	if flags&tsHasOpen != 0 {
		t.Open = &Divergence{
			ID:            d.string(),
			Kind:          d.string(),
			OpenedAt:      d.time(),
			DetectedAt:    d.time(),
			SourceVersion: d.version(),
			RepairID:      d.string(),
		}
	}
	if flags&tsHasRow != 0 {
		t.Row = d.row("target row")
		if d.err == nil && len(t.Row) == 0 {
			d.fail("empty target row")
		}
	}
	return t
}

// row reads n × (column, value), columns strictly ascending.
func (d *decoder) row(what string) compare.Row {
	n := d.count(what, minRowCol)
	if n == 0 {
		return nil
	}
	row := make(compare.Row, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		col := d.string()
		d.ascending(what+" column", i, prev, col)
		row[col] = d.value()
		prev = col
	}
	return row
}

func (d *decoder) head(h *Head) {
	h.Version = d.version()
	h.Digest = d.digest()
	h.Deleted = d.flags("head flags", headDeleted)&headDeleted != 0
	h.EventTime = d.time()
	h.SeenAt = d.time()
	p := d.varint()
	if p < math.MinInt32 || p > math.MaxInt32 {
		d.fail("partition out of int32 range")
	}
	h.Partition = int32(p)
	if n := d.count("head columns", minHashCol); n > 0 {
		h.Cols = make(compare.Columns, 0, n)
		prev := ""
		for i := 0; i < n && d.err == nil; i++ {
			col := d.string()
			d.ascending("head column", i, prev, col)
			h.Cols = append(h.Cols, compare.Column{Name: col, Hash: d.fixed64()})
			prev = col
		}
	}
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("decode at byte %d: %s: %w", d.off, what, ErrCorrupt)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.fail("truncated reading " + what)
		return 0
	}
	b := d.s[d.off]
	d.off++
	return b
}

// flags reads a flags byte and rejects bits outside known.
func (d *decoder) flags(what string, known byte) byte {
	f := d.byte(what)
	if f&^known != 0 {
		d.fail(fmt.Sprintf("unknown %s %#x", what, f))
		return 0
	}
	return f
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	// Most varints here (counts, lengths, zero versions) are one byte.
	if d.off < len(d.s) && d.s[d.off] < 0x80 {
		d.off++
		return uint64(d.s[d.off-1])
	}
	rest := d.s[d.off:]
	var v uint64
	for i := 0; i < len(rest); i++ {
		b := rest[i]
		if i == binary.MaxVarintLen64-1 && b > 1 {
			d.fail("varint overflows 64 bits")
			return 0
		}
		if b < 0x80 {
			if b == 0 {
				d.fail("non-minimal varint")
				return 0
			}
			d.off += i + 1
			return v | uint64(b)<<(7*i)
		}
		v |= uint64(b&0x7f) << (7 * i)
	}
	d.fail("truncated varint")
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// count reads an element count and checks that the rest of the input can
// hold that many elements of at least min bytes each, so a corrupt length
// never makes us allocate more than a small multiple of the input size.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.s)-d.off)/minSize) {
		d.fail(fmt.Sprintf("%s count %d exceeds remaining input", what, n))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.off) {
		d.fail(fmt.Sprintf("string length %d exceeds remaining input", n))
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// ascending enforces the strictly ascending order encoding gives map keys:
// it rejects duplicates and keeps the encoding of a decoded state unique.
func (d *decoder) ascending(what string, i int, prev, cur string) {
	if i > 0 && cur <= prev {
		d.fail(what + " keys not strictly ascending")
	}
}

func (d *decoder) value() compare.Value {
	k := d.byte("value kind")
	return compare.Value{Kind: compare.Kind(k), Text: d.string()}
}

func (d *decoder) version() compare.Version {
	return compare.Version{A: d.uvarint(), B: d.uvarint(), C: d.uvarint()}
}

func (d *decoder) digest() compare.Digest {
	var g compare.Digest
	if d.err != nil {
		return g
	}
	if len(d.s)-d.off < len(g) {
		d.fail("truncated digest")
		return g
	}
	copy(g[:], d.s[d.off:])
	d.off += len(g)
	return g
}

func (d *decoder) fixed64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.s)-d.off < 8 {
		d.fail("truncated column hash")
		return 0
	}
	s := d.s[d.off : d.off+8]
	d.off += 8
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func (d *decoder) time() time.Time {
	n := d.varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
