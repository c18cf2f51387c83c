package state

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Outbox records are written once and read once, but can be large (a repair
// in full payload mode carries a row), so they use the same helpers rather
// than JSON's base64. Kafka tells a null value (tombstone) from an empty one,
// so byte fields keep nil apart from empty: their length is stored plus one,
// with 0 meaning nil.
//
//	byte      codec version (1)
//	string    topic
//	bytes     key, value
//	uvarint   n, n × (string header key, bytes header value)
//
// Seq is not stored: it is the record's key.
const outboxCodecV1 = 1

const (
	minBytes  = 1
	minHeader = minString + minBytes
)

func appendOutboxRecord(dst []byte, r *OutboxRecord) []byte {
	e := encoder{buf: dst}
	e.buf = append(e.buf, outboxCodecV1)
	e.string(r.Topic)
	e.bytes(r.Key)
	e.bytes(r.Value)
	e.uvarint(uint64(len(r.Headers)))
	for _, h := range r.Headers {
		e.string(h.Key)
		e.bytes(h.Value)
	}
	return e.buf
}

func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	e.buf = append(e.buf, b...)
}

func decodeOutboxRecord(seq uint64, b []byte) (OutboxRecord, error) {
	d := decoder{s: string(b)}
	if v := d.byte("codec version"); d.err == nil && v != outboxCodecV1 {
		d.fail(fmt.Sprintf("unknown outbox codec version %d", v))
	}
	r := OutboxRecord{Seq: seq, Topic: d.string(), Key: d.bytes(), Value: d.bytes()}
	if n := d.count("headers", minHeader); n > 0 {
		r.Headers = make([]Header, n)
		for i := range r.Headers {
			r.Headers[i] = Header{Key: d.string(), Value: d.bytes()}
		}
	}
	if d.err == nil && d.off != len(d.s) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return OutboxRecord{}, fmt.Errorf("outbox record %d: %w", seq, d.err)
	}
	return r, nil
}

// bytes copies: a []byte cannot share the decoder's string.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.s)-d.off) {
		d.fail(fmt.Sprintf("bytes length %d exceeds remaining input", n))
		return nil
	}
	b := []byte(d.s[d.off : d.off+int(n)])
	d.off += int(n)
	return b
}

// Outbox returns up to limit records waiting to be published, oldest first
// (by Seq). limit <= 0 means no limit.
func (s *Store) Outbox(limit int) ([]OutboxRecord, error) {
	// Start at the lowest seq known to remain. Drained records leave
	// tombstones at the front of the range until compaction drops them;
	// seeking past them keeps a drained-and-refilled outbox cheap to read.
	// Seqs only grow, so nothing can appear below it later.
	s.mu.Lock()
	low := s.outboxLowSeq
	s.mu.Unlock()
	var out []OutboxRecord
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: outboxPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Seek(appendOutboxKey(nil, low)); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			seq, err := decodeOutboxKey(it.Item().Key())
			if err != nil {
				return err
			}
			var r OutboxRecord
			if err := it.Item().Value(func(v []byte) (err error) { r, err = decodeOutboxRecord(seq, v); return err }); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	if len(out) > 0 {
		s.mu.Lock()
		s.outboxLowSeq = max(s.outboxLowSeq, out[0].Seq)
		s.mu.Unlock()
	}
	return out, nil
}

// DeleteOutbox removes published records, durably. Seqs that are not in the
// outbox (deleted before, never written) are ignored, so a publisher may
// retry a delete.
func (s *Store) DeleteOutbox(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var (
		count int
		bytes int64
	)
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, seq := range seqs {
		k := appendOutboxKey(nil, seq)
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue // absent, or listed twice and deleted above
		}
		if err != nil {
			return fmt.Errorf("delete outbox record %d: %w", seq, err)
		}
		n, err := valueLen(item)
		if err != nil {
			return fmt.Errorf("delete outbox record %d: %w", seq, err)
		}
		bytes += n
		count++
		if err := txn.Delete(k); err != nil {
			return fmt.Errorf("delete outbox record %d: %w", seq, err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("delete %d outbox records: %w", len(seqs), err)
	}
	s.mu.Lock()
	s.outboxCount -= count
	s.outboxBytes -= bytes
	if count > 0 {
		close(s.outboxShrunk)
		s.outboxShrunk = make(chan struct{})
	}
	s.mu.Unlock()
	return nil
}

// valueLen is the exact length of item's value. Item.ValueSize is only an
// estimate for values kept in the value log, and the outbox byte counter must
// not drift; Value costs nothing more for values kept in the LSM tree.
func valueLen(item *badger.Item) (n int64, err error) {
	err = item.Value(func(v []byte) error { n = int64(len(v)); return nil })
	return n, err
}

// OutboxDepth is how many records wait in the outbox and their encoded size
// in bytes. It reads counters kept in memory, so metrics can call it freely.
func (s *Store) OutboxDepth() (records int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outboxCount, s.outboxBytes
}
