package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

// The Badger layout. Every key starts with a one-byte prefix naming its record
// family, so each family is a contiguous, independently iterable key range.
// Everything that decides how a key looks lives in this file; bump
// LayoutVersion whenever any of it changes incompatibly. Values lead with
// their own codec version byte, so a codec can gain a version that decoders
// read next to the old one without a layout bump.
//
//	prefix  key                                              value
//	'v'     v                                                uvarint LayoutVersion
//	'm'     m | name                                         meta; see metaOutboxSeq,
//	                                                          metaAuditHead, metaDatasetConfig
//	'k'     k | dataset | 0x00 | key                         KeyState (codec.go)
//	't'     t | deadline | dataset 0x00 target 0x00 key      empty
//	'o'     o | seq                                          OutboxRecord (outbox.go)
//	'f'     f | topic 0x00 | partition                       varint next offset
//	'r'     r | id                                           byte 1, RepairRecord as JSON
//	'a'     a | seq                                          AuditRecord (audit.go)
//	'd'     d | id                                           byte 1, DivergenceRecord as JSON
//	'l'     l | family | time | id                           empty: listing index, newest last
//	'x'     x | dataset 0x00 | keyhash | family | suffix     empty: what touches a key
//	'w'     w | deadline | repair id                         empty: repair verification timer
//
// The listing index orders divergences (family 'd', by detection time) and
// repairs (family 'r', by creation time) for paging; time is unix
// nanoseconds as a big-endian uint64, clamped at 0. The key index names the
// divergences ('d' | id), repairs ('r' | id) and audit records ('a' | seq)
// of one key: keyhash is the first 16 bytes of the SHA-256 of the canonical
// key, fixed-size so that a suffix can follow it; readers check the record's
// own key, so a collision costs a read, never a wrong answer. Index entries
// are written with their records, in the same transaction, and never
// deleted: the records they point at are not either.
//
// Integers inside keys are big-endian so that byte order is numeric order:
// timers sort by deadline (unix nanoseconds as uint64), outbox records by seq
// (uint64), offsets by partition (int32 bits as uint32; partitions are never
// negative). Deadlines must lie between 1970 and 2262 so that their unix
// nanoseconds are non-negative and fit in an int64.
//
// A timer's key holds everything the sweeper needs, so DueTimers is a prefix
// iteration that stops at the first future deadline and never reads a value.
// Dataset, target and topic names must not contain 0x00, the separator; the
// canonical key comes last in every key that holds it, so it may contain any
// byte.
//
// The meta key metaOutboxSeq holds the last outbox seq ever assigned. It is
// written in the same transaction as the outbox records, so seqs stay
// monotonic across restarts even after the outbox has been drained.
// metaAuditHead holds the audit chain's head (last seq and its hash), written
// with the audit records; metaDatasetConfig | dataset holds the rules version
// and config hash a dataset last ran with.
//
// The audit family and its meta keys came after layout 1 without a bump:
// a layout-1 dir without them is an empty chain, and nothing else reads them.
// So did the divergence, index and verification families, and the meta keys
// metaIndexed (the index holds every repair and audit record: Open builds
// it once for a dir written before) and metaGuardPrefix | dataset (the
// blast-radius guard's state).
const LayoutVersion = 1

const (
	prefixVersion  = 'v'
	prefixMeta     = 'm'
	prefixKeyState = 'k'
	prefixTimer    = 't'
	prefixOutbox   = 'o'
	prefixOffset   = 'f'
	prefixRepair   = 'r'
	prefixAudit    = 'a'
	prefixDiv      = 'd'
	prefixList     = 'l'
	prefixKeyIdx   = 'x'
	prefixVerify   = 'w'
)

// Families of the listing and key indexes.
const (
	familyAudit      = 'a'
	familyDivergence = 'd'
	familyRepair     = 'r'
)

const sep = 0x00

var (
	keyVersion     = []byte{prefixVersion}
	metaOutboxSeq  = []byte{prefixMeta, 'o', 'u', 't', 'b', 'o', 'x', '_', 's', 'e', 'q'}
	keyStatePrefix = []byte{prefixKeyState}
	timerPrefix    = []byte{prefixTimer}
	outboxPrefix   = []byte{prefixOutbox}
	offsetPrefix   = []byte{prefixOffset}
	repairPrefix   = []byte{prefixRepair}
	auditPrefix    = []byte{prefixAudit}
	metaAuditHead  = []byte("maudit_head")
	divPrefix      = []byte{prefixDiv}
	verifyPrefix   = []byte{prefixVerify}
	metaIndexed    = []byte("mindexed")
	// metaGuardPrefix is followed by a dataset name.
	metaGuardPrefix = []byte("mguard\x00")
	// metaDatasetConfigPrefix is followed by a dataset name.
	metaDatasetConfigPrefix = []byte("mdataset_config\x00")
)

// LayoutVersionError says a state dir was written by a recon with another
// layout. Nothing is migrated implicitly: the operator decides.
type LayoutVersionError struct {
	Dir        string
	Have, Want uint64
}

func (e *LayoutVersionError) Error() string {
	return fmt.Sprintf("state dir %s has layout version %d, this recon needs %d", e.Dir, e.Have, e.Want)
}

func encodeLayoutVersion(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func decodeLayoutVersion(b []byte) (uint64, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("layout version value %x: %w", b, ErrCorrupt)
	}
	return v, nil
}

// checkName rejects names that would break the 0x00-separated keys.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if strings.IndexByte(s, sep) >= 0 {
		return fmt.Errorf("%s name %q contains a NUL byte", what, s)
	}
	return nil
}

func appendKeyStateKey(dst []byte, dataset, key string) []byte {
	dst = append(dst, prefixKeyState)
	dst = append(dst, dataset...)
	dst = append(dst, sep)
	return append(dst, key...)
}

func keyStateDatasetPrefix(dataset string) []byte {
	return append(append([]byte{prefixKeyState}, dataset...), sep)
}

// Deadlines outside [minDeadline, maxDeadline] have no unix-nanosecond key.
var (
	minDeadline = time.Unix(0, 0)
	maxDeadline = time.Unix(0, math.MaxInt64)
)

func checkDeadline(t time.Time) error {
	if t.Before(minDeadline) || t.After(maxDeadline) {
		return fmt.Errorf("timer deadline %s is outside 1970..2262", t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func appendTimerKey(dst []byte, deadline time.Time, dataset, target, key string) []byte {
	dst = append(dst, prefixTimer)
	dst = binary.BigEndian.AppendUint64(dst, uint64(deadline.UnixNano()))
	dst = append(dst, dataset...)
	dst = append(dst, sep)
	dst = append(dst, target...)
	dst = append(dst, sep)
	return append(dst, key...)
}

// timerDeadline reads only the deadline of a timer key: DueTimers checks it
// before it bothers to split the rest.
func timerDeadline(k []byte) (int64, error) {
	if len(k) < 9 || k[0] != prefixTimer {
		return 0, fmt.Errorf("timer key %q: %w", k, ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(k[1:9])
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("timer key %q: deadline overflows: %w", k, ErrCorrupt)
	}
	return int64(n), nil
}

func decodeTimerKey(k []byte) (Timer, error) {
	n, err := timerDeadline(k)
	if err != nil {
		return Timer{}, err
	}
	rest := k[9:]
	i := bytes.IndexByte(rest, sep)
	if i < 0 {
		return Timer{}, fmt.Errorf("timer key %q: no dataset separator: %w", k, ErrCorrupt)
	}
	j := bytes.IndexByte(rest[i+1:], sep)
	if j < 0 {
		return Timer{}, fmt.Errorf("timer key %q: no target separator: %w", k, ErrCorrupt)
	}
	return Timer{
		Deadline: time.Unix(0, n).UTC(),
		Dataset:  string(rest[:i]),
		Target:   string(rest[i+1 : i+1+j]),
		Key:      string(rest[i+2+j:]),
	}, nil
}

func appendOutboxKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixOutbox), seq)
}

func decodeOutboxKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixOutbox {
		return 0, fmt.Errorf("outbox key %q: %w", k, ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

func encodeOutboxSeq(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func decodeOutboxSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("outbox seq value %x: %w", b, ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}

func appendOffsetKey(dst []byte, topic string, partition int32) []byte {
	dst = append(dst, prefixOffset)
	dst = append(dst, topic...)
	dst = append(dst, sep)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

func decodeOffsetKey(k []byte) (topic string, partition int32, err error) {
	if len(k) < 1+1+4 || k[0] != prefixOffset || k[len(k)-5] != sep {
		return "", 0, fmt.Errorf("offset key %q: %w", k, ErrCorrupt)
	}
	return string(k[1 : len(k)-5]), int32(binary.BigEndian.Uint32(k[len(k)-4:])), nil
}

func appendOffsetValue(dst []byte, next int64) []byte { return binary.AppendVarint(dst, next) }

func decodeOffset(b []byte) (int64, error) {
	v, n := binary.Varint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("offset value %x: %w", b, ErrCorrupt)
	}
	return v, nil
}

func appendRepairKey(dst []byte, id string) []byte {
	return append(append(dst, prefixRepair), id...)
}

func appendAuditKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixAudit), seq)
}

func decodeAuditKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixAudit {
		return 0, fmt.Errorf("audit key %q: %w", k, ErrCorrupt)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

func appendDatasetConfigKey(dst []byte, dataset string) []byte {
	return append(append(dst, metaDatasetConfigPrefix...), dataset...)
}

func appendDivKey(dst []byte, id string) []byte {
	return append(append(dst, prefixDiv), id...)
}

// indexNanos is t as a listing or timer index position: unix nanoseconds,
// clamped to 0..MaxInt64 so that byte order is time order.
func indexNanos(t time.Time) uint64 {
	switch {
	case t.Before(minDeadline):
		return 0
	case t.After(maxDeadline):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

func listPrefix(family byte) []byte { return []byte{prefixList, family} }

func appendListKey(dst []byte, family byte, t time.Time, id string) []byte {
	dst = append(dst, prefixList, family)
	dst = binary.BigEndian.AppendUint64(dst, indexNanos(t))
	return append(dst, id...)
}

// listID returns the id at the end of a listing key.
func listID(k []byte) (string, error) {
	if len(k) < 2+8 || k[0] != prefixList {
		return "", fmt.Errorf("listing key %q: %w", k, ErrCorrupt)
	}
	return string(k[10:]), nil
}

func keyHash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:16]
}

// appendKeyIdxPrefix appends the key index prefix of one key's family.
func appendKeyIdxPrefix(dst []byte, dataset, key string, family byte) []byte {
	dst = append(dst, prefixKeyIdx)
	dst = append(dst, dataset...)
	dst = append(dst, sep)
	dst = append(dst, keyHash(key)...)
	return append(dst, family)
}

func appendVerifyKey(dst []byte, deadline time.Time, id string) []byte {
	dst = append(dst, prefixVerify)
	dst = binary.BigEndian.AppendUint64(dst, indexNanos(deadline))
	return append(dst, id...)
}

func decodeVerifyKey(k []byte) (VerifyTimer, error) {
	if len(k) < 9 || k[0] != prefixVerify {
		return VerifyTimer{}, fmt.Errorf("verification timer key %q: %w", k, ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(k[1:9])
	if n > math.MaxInt64 {
		return VerifyTimer{}, fmt.Errorf("verification timer key %q: deadline overflows: %w", k, ErrCorrupt)
	}
	return VerifyTimer{Deadline: time.Unix(0, int64(n)).UTC(), RepairID: string(k[9:])}, nil
}

func appendGuardKey(dst []byte, dataset string) []byte {
	return append(append(dst, metaGuardPrefix...), dataset...)
}
