package state

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrBadCursor is wrapped by the error of a page read given a cursor that no
// page read returned.
var ErrBadCursor = errors.New("bad cursor")

// divergenceCodecJSON leads a stored DivergenceRecord, as for repairs.
const divergenceCodecJSON = 1

func encodeDivergence(d DivergenceRecord) ([]byte, error) {
	d.OpenedAt, d.DetectedAt, d.ResolvedAt = d.OpenedAt.UTC(), d.DetectedAt.UTC(), d.ResolvedAt.UTC()
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode divergence %s: %w", d.ID, err)
	}
	return append([]byte{divergenceCodecJSON}, b...), nil
}

func decodeDivergence(b []byte) (DivergenceRecord, error) {
	var d DivergenceRecord
	if len(b) == 0 || b[0] != divergenceCodecJSON {
		return d, fmt.Errorf("divergence record: unknown codec: %w", ErrCorrupt)
	}
	if err := json.Unmarshal(b[1:], &d); err != nil {
		return d, fmt.Errorf("divergence record: %w: %w", ErrCorrupt, err)
	}
	return d, nil
}

// PutDivergence creates or replaces a divergence record, with its index
// entries.
func (b *Batch) PutDivergence(d DivergenceRecord) {
	if d.ID == "" {
		b.fail(errors.New("put divergence: empty id"))
		return
	}
	v, err := encodeDivergence(d)
	if err != nil {
		b.fail(err)
		return
	}
	k0 := b.mark()
	b.enc.buf = appendDivKey(b.enc.buf, d.ID)
	v0 := b.mark()
	b.enc.buf = append(b.enc.buf, v...)
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: v0, value0: v0, value1: b.mark()})
	b.index(familyDivergence, d.DetectedAt, d.Dataset, d.Key, d.ID)
}

// Divergence returns one divergence record by id, or (nil, nil) if there is
// none.
func (s *Store) Divergence(id string) (*DivergenceRecord, error) {
	var d *DivergenceRecord
	err := s.db.View(func(txn *badger.Txn) (err error) {
		d, err = getDivergence(txn, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read divergence %s: %w", id, err)
	}
	return d, nil
}

func getDivergence(txn *badger.Txn, id string) (*DivergenceRecord, error) {
	item, err := txn.Get(appendDivKey(nil, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var d DivergenceRecord
	err = item.Value(func(v []byte) (err error) { d, err = decodeDivergence(v); return err })
	if err != nil {
		return nil, err
	}
	return &d, nil
}

func getRepair(txn *badger.Txn, id string) (*RepairRecord, error) {
	item, err := txn.Get(appendRepairKey(nil, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r RepairRecord
	err = item.Value(func(v []byte) (err error) { r, err = decodeRepair(v); return err })
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// DivergencePage returns up to limit divergence records that keep accepts,
// newest detection first, starting after cursor ("" for the newest), and the
// cursor of the next page: "" when the walk reached the oldest record. keep
// nil accepts every record; limit <= 0 means no limit. One consistent
// snapshot serves the page.
func (s *Store) DivergencePage(cursor string, limit int, keep func(*DivergenceRecord) bool) ([]DivergenceRecord, string, error) {
	var out []DivergenceRecord
	next, err := s.page(familyDivergence, cursor, limit, func(txn *badger.Txn, id string) (bool, error) {
		d, err := getDivergence(txn, id)
		if err != nil || d == nil || (keep != nil && !keep(d)) {
			return false, err
		}
		out = append(out, *d)
		return true, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read divergences: %w", err)
	}
	return out, next, nil
}

// RepairPage returns up to limit repair records that keep accepts, newest
// first, as DivergencePage does.
func (s *Store) RepairPage(cursor string, limit int, keep func(*RepairRecord) bool) ([]RepairRecord, string, error) {
	var out []RepairRecord
	next, err := s.page(familyRepair, cursor, limit, func(txn *badger.Txn, id string) (bool, error) {
		r, err := getRepair(txn, id)
		if err != nil || r == nil || (keep != nil && !keep(r)) {
			return false, err
		}
		out = append(out, *r)
		return true, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read repairs: %w", err)
	}
	return out, next, nil
}

// page walks the listing index of family from the newest entry, or from the
// one after cursor, calling visit with each id until it accepted limit. The
// cursor is the position of the last accepted entry, base64url-encoded.
func (s *Store) page(family byte, cursor string, limit int, visit func(*badger.Txn, string) (bool, error)) (string, error) {
	prefix := listPrefix(family)
	start := append(bytes.Clone(prefix), 0xff) // past every entry of the family
	after := []byte(nil)
	if cursor != "" {
		pos, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(pos) < 8 {
			return "", fmt.Errorf("cursor %q: %w", cursor, ErrBadCursor)
		}
		after = append(bytes.Clone(prefix), pos...)
		start = after
	}
	var next string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		n := 0
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if after != nil && bytes.Equal(k, after) {
				continue
			}
			id, err := listID(k)
			if err != nil {
				return err
			}
			ok, err := visit(txn, id)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if !ok {
				continue
			}
			if n++; limit > 0 && n >= limit {
				next = base64.RawURLEncoding.EncodeToString(k[len(prefix):])
				return nil
			}
		}
		return nil
	})
	return next, err
}

// KeyRecords is what the store holds about one key besides its state.
type KeyRecords struct {
	Divergences []DivergenceRecord // oldest detection first
	Repairs     []RepairRecord     // oldest first
	Audit       []AuditRecord      // in seq order: the newest auditLimit
}

// KeyRecords returns the divergences, repairs and audit records of one key
// of dataset (key is the canonical key), through the key index. auditLimit
// bounds the audit records to the newest ones (<= 0: all).
func (s *Store) KeyRecords(dataset, key string, auditLimit int) (KeyRecords, error) {
	var kr KeyRecords
	err := s.db.View(func(txn *badger.Txn) error {
		err := scanKeyIdx(txn, dataset, key, familyDivergence, func(suffix []byte) error {
			d, err := getDivergence(txn, string(suffix))
			if err == nil && d != nil && d.Dataset == dataset && d.Key == key {
				kr.Divergences = append(kr.Divergences, *d)
			}
			return err
		})
		if err != nil {
			return err
		}
		err = scanKeyIdx(txn, dataset, key, familyRepair, func(suffix []byte) error {
			r, err := getRepair(txn, string(suffix))
			if err == nil && r != nil && r.Dataset == dataset && r.Key == key {
				kr.Repairs = append(kr.Repairs, *r)
			}
			return err
		})
		if err != nil {
			return err
		}
		var seqs []uint64
		err = scanKeyIdx(txn, dataset, key, familyAudit, func(suffix []byte) error {
			if len(suffix) != 8 {
				return fmt.Errorf("audit key index suffix %x: %w", suffix, ErrCorrupt)
			}
			seqs = append(seqs, binary.BigEndian.Uint64(suffix))
			return nil
		})
		if err != nil {
			return err
		}
		if auditLimit > 0 && len(seqs) > auditLimit {
			seqs = seqs[len(seqs)-auditLimit:]
		}
		for _, seq := range seqs {
			item, err := txn.Get(appendAuditKey(nil, seq))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // removed: VerifyAudit reports it
			}
			if err != nil {
				return err
			}
			var r AuditRecord
			if err := item.Value(func(v []byte) (err error) { r, err = decodeAuditRecord(v); return err }); err != nil {
				return fmt.Errorf("audit seq %d: %w", seq, err)
			}
			if r.Dataset == dataset && r.Key == key {
				kr.Audit = append(kr.Audit, r)
			}
		}
		return nil
	})
	if err != nil {
		return KeyRecords{}, fmt.Errorf("read records of %s key %q: %w", dataset, key, err)
	}
	sortByTime(kr.Divergences, func(d DivergenceRecord) (time.Time, string) { return d.DetectedAt, d.ID })
	sortByTime(kr.Repairs, func(r RepairRecord) (time.Time, string) { return r.CreatedAt, r.ID })
	return kr, nil
}

func scanKeyIdx(txn *badger.Txn, dataset, key string, family byte, fn func(suffix []byte) error) error {
	prefix := appendKeyIdxPrefix(nil, dataset, key, family)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := fn(it.Item().Key()[len(prefix):]); err != nil {
			return err
		}
	}
	return nil
}

func sortByTime[T any](s []T, at func(T) (time.Time, string)) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0; j-- {
			ta, ia := at(s[j-1])
			tb, ib := at(s[j])
			if ta.Before(tb) || (ta.Equal(tb) && ia <= ib) {
				break
			}
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

// VerifyTimer is when verification of a published repair gives up.
type VerifyTimer struct {
	Deadline time.Time
	RepairID string
}

// MoveVerifyTimer replaces the verification timer of repair id at old by one
// at new; zero times mean none, as for MoveTimer.
func (b *Batch) MoveVerifyTimer(id string, old, new time.Time) {
	if old.Equal(new) {
		return
	}
	if id == "" {
		b.fail(errors.New("move verification timer: empty repair id"))
		return
	}
	if !old.IsZero() {
		k0 := b.mark()
		b.enc.buf = appendVerifyKey(b.enc.buf, old, id)
		b.ops = append(b.ops, op{kind: opDelete, key0: k0, key1: b.mark()})
	}
	if !new.IsZero() {
		k0 := b.mark()
		b.enc.buf = appendVerifyKey(b.enc.buf, new, id)
		end := b.mark()
		b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: end, value0: end, value1: end})
	}
}

// DueVerifyTimers returns up to limit verification timers due at now, oldest
// first; limit <= 0 means no limit.
func (s *Store) DueVerifyTimers(now time.Time, limit int) ([]VerifyTimer, error) {
	var out []VerifyTimer
	cutoff := indexNanos(now)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: verifyPrefix})
		defer it.Close()
		for it.Rewind(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			t, err := decodeVerifyKey(it.Item().Key())
			if err != nil {
				return err
			}
			if indexNanos(t.Deadline) > cutoff {
				return nil
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read due verification timers: %w", err)
	}
	return out, nil
}

// NextVerifyDeadline returns the earliest verification deadline, and false
// if there is none.
func (s *Store) NextVerifyDeadline() (time.Time, bool, error) {
	var (
		t  VerifyTimer
		ok bool
	)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: verifyPrefix})
		defer it.Close()
		it.Rewind()
		if !it.Valid() {
			return nil
		}
		var err error
		t, err = decodeVerifyKey(it.Item().Key())
		ok = err == nil
		return err
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read next verification deadline: %w", err)
	}
	return t.Deadline, ok, nil
}

// GuardState is the blast-radius guard of one dataset, as last recorded.
type GuardState struct {
	Tripped bool
	Since   time.Time // when it last tripped or cleared
	Reason  string
}

const guardCodecV1 = 1

// PutGuardState records the guard state of a dataset.
func (b *Batch) PutGuardState(dataset string, g GuardState) {
	if err := checkName("dataset", dataset); err != nil {
		b.fail(fmt.Errorf("put guard state: %w", err))
		return
	}
	k0 := b.mark()
	b.enc.buf = appendGuardKey(b.enc.buf, dataset)
	v0 := b.mark()
	b.enc.buf = append(b.enc.buf, guardCodecV1, boolFlag(g.Tripped, 1))
	b.enc.time(g.Since)
	b.enc.string(g.Reason)
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: v0, value0: v0, value1: b.mark()})
}

// GuardStates returns the recorded guard state of every dataset that has
// one.
func (s *Store) GuardStates() (map[string]GuardState, error) {
	out := map[string]GuardState{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: metaGuardPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := string(it.Item().Key()[len(metaGuardPrefix):])
			err := it.Item().Value(func(v []byte) error {
				d := decoder{s: string(v)}
				if c := d.byte("codec version"); d.err == nil && c != guardCodecV1 {
					d.fail(fmt.Sprintf("unknown guard codec version %d", c))
				}
				g := GuardState{Tripped: d.flags("guard flags", 1) == 1, Since: d.time(), Reason: d.string()}
				if d.err == nil && d.off != len(d.s) {
					d.fail("trailing bytes")
				}
				out[name] = g
				return d.err
			})
			if err != nil {
				return fmt.Errorf("dataset %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read guard states: %w", err)
	}
	return out, nil
}

// buildIndex writes the listing and key index entries of the repair and
// audit records of a dir written before the indexes existed, once. It runs
// in Open, before any other writer.
func (s *Store) buildIndex() error {
	done := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(metaIndexed)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		done = err == nil
		return err
	})
	if err != nil || done {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	b := s.NewBatch()
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: repairPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r RepairRecord
			if err := it.Item().Value(func(v []byte) (err error) { r, err = decodeRepair(v); return err }); err != nil {
				return fmt.Errorf("key %q: %w", it.Item().Key(), err)
			}
			b.index(familyRepair, r.CreatedAt, r.Dataset, r.Key, r.ID)
		}
		return nil
	})
	if err == nil {
		err = s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: auditPrefix, PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				var r AuditRecord
				err := it.Item().Value(func(v []byte) (err error) { r, err = decodeAuditRecord(v); return err })
				if err != nil || r.Key == "" || r.Dataset == "" || checkName("dataset", r.Dataset) != nil {
					continue // an unreadable record is VerifyAudit's to report
				}
				k := appendKeyIdxPrefix(nil, r.Dataset, r.Key, familyAudit)
				k = binary.BigEndian.AppendUint64(k, r.Seq)
				if err := wb.Set(k, []byte{}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("build the record index: %w", err)
	}
	for _, o := range b.ops {
		if err := wb.Set(bytes.Clone(b.enc.buf[o.key0:o.key1]), []byte{}); err != nil {
			return fmt.Errorf("build the record index: %w", err)
		}
	}
	if err := wb.Set(metaIndexed, []byte{1}); err != nil {
		return fmt.Errorf("build the record index: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("build the record index: %w", err)
	}
	return nil
}

// KeyStateCount is the number of key states of dataset. It reads keys only.
func (s *Store) KeyStateCount(dataset string) (int64, error) {
	var n int64
	prefix := keyStateDatasetPrefix(dataset)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count key states of %s: %w", dataset, err)
	}
	return n, nil
}
