package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Batch collects the writes of one poll (key states, timers, outbox records,
// audit records, input offsets) for Commit to apply in one transaction, the way raft
// persists a Ready before acting on it. A Batch is not safe for concurrent
// use.
//
// Every method encodes at once, so the caller may change or reuse what it
// passed as soon as the method returns. A method given something the layout
// cannot store (a name with a NUL byte, a deadline outside 1970..2262) records
// the error, and Commit returns it without writing anything: the batch is
// all or nothing.
type Batch struct {
	// enc.buf is an arena holding every key and value of the batch; ops
	// refer to it by offset, so a batch of a thousand writes makes a handful
	// of allocations.
	enc     encoder
	ops     []op
	outboxN int
	// outboxBytes is the encoded size of the outbox records appended.
	outboxBytes int64
	auditN      int
	err         error
	// minTimer is the earliest deadline the batch sets (unix nanos), so the
	// store can lower its timer scan bound; math.MaxInt64 when none.
	minTimer int64
}

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opPutKeyState // a set that may create a key state: Commit counts those
	opNewKeyState // a set the caller knows creates a key state
	opOutbox      // a set whose key (the seq) is assigned at Commit
	opAudit       // an audit record: seq, prev hash and hash are assigned at Commit
)

type op struct {
	kind           opKind
	key0, key1     int
	value0, value1 int
}

// NewBatch returns an empty batch. Batches are cheap; Reset lets a hot loop
// reuse one's memory.
func (s *Store) NewBatch() *Batch { return &Batch{minTimer: math.MaxInt64} }

// Len is the number of writes the batch will make (a MoveTimer makes up to
// two), so the caller can bound it well below Badger's transaction limit.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties the batch, keeping its memory, including a recorded error.
func (b *Batch) Reset() {
	b.enc.buf = b.enc.buf[:0]
	b.ops = b.ops[:0]
	b.outboxN = 0
	b.outboxBytes = 0
	b.auditN = 0
	b.err = nil
	b.minTimer = math.MaxInt64
}

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// mark returns the current end of the arena.
func (b *Batch) mark() int { return len(b.enc.buf) }

// PutKeyState sets the state of one key; key is the canonical key string.
// Commit looks the key up to keep the key count exact; a caller that knows
// whether the key is new says so with PutKnownKeyState and saves the read.
func (b *Batch) PutKeyState(dataset, key string, ks *KeyState) {
	b.putKeyState(dataset, key, ks, opPutKeyState)
}

// PutKnownKeyState sets the state of one key whose existence the caller
// knows: created says whether the store has no state for it yet.
func (b *Batch) PutKnownKeyState(dataset, key string, ks *KeyState, created bool) {
	kind := opSet
	if created {
		kind = opNewKeyState
	}
	b.putKeyState(dataset, key, ks, kind)
}

func (b *Batch) putKeyState(dataset, key string, ks *KeyState, kind opKind) {
	if err := checkName("dataset", dataset); err != nil {
		b.fail(fmt.Errorf("put key state %q: %w", key, err))
		return
	}
	if ks == nil {
		b.fail(fmt.Errorf("put key state %s/%q: nil state", dataset, key))
		return
	}
	k0 := b.mark()
	b.enc.buf = appendKeyStateKey(b.enc.buf, dataset, key)
	v0 := b.mark()
	b.enc.keyState(ks)
	b.ops = append(b.ops, op{kind: kind, key0: k0, key1: v0, value0: v0, value1: b.mark()})
}

// MoveTimer replaces the timer of (dataset, target, key) at old by one at
// new. A zero old means there was none; a zero new means there will be none;
// equal instants change nothing.
func (b *Batch) MoveTimer(dataset, target, key string, old, new time.Time) {
	if old.Equal(new) {
		return
	}
	if err := errors.Join(checkName("dataset", dataset), checkName("target", target)); err != nil {
		b.fail(fmt.Errorf("move timer of %q: %w", key, err))
		return
	}
	for _, t := range []time.Time{old, new} {
		if !t.IsZero() {
			if err := checkDeadline(t); err != nil {
				b.fail(fmt.Errorf("move timer of %s/%s/%q: %w", dataset, target, key, err))
				return
			}
		}
	}
	if !old.IsZero() {
		k0 := b.mark()
		b.enc.buf = appendTimerKey(b.enc.buf, old, dataset, target, key)
		b.ops = append(b.ops, op{kind: opDelete, key0: k0, key1: b.mark()})
	}
	if !new.IsZero() {
		b.minTimer = min(b.minTimer, new.UnixNano())
		k0 := b.mark()
		b.enc.buf = appendTimerKey(b.enc.buf, new, dataset, target, key)
		end := b.mark()
		b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: end, value0: end, value1: end})
	}
}

// AppendOutbox queues a record for the publisher. Its Seq is ignored: Commit
// assigns seqs in append order, continuing from the last one ever assigned.
func (b *Batch) AppendOutbox(r OutboxRecord) {
	v0 := b.mark()
	b.enc.buf = appendOutboxRecord(b.enc.buf, &r)
	b.ops = append(b.ops, op{kind: opOutbox, value0: v0, value1: b.mark()})
	b.outboxN++
	b.outboxBytes += int64(b.mark() - v0)
}

// OutboxBytes is the encoded size of the outbox records appended so far, as
// they will count in OutboxDepth once committed (audit mirrors aside).
func (b *Batch) OutboxBytes() int64 { return b.outboxBytes }

// SetOffset records the next offset to read from a topic partition: the
// input this batch's state already reflects.
func (b *Batch) SetOffset(topic string, partition int32, next int64) {
	if err := checkName("topic", topic); err != nil {
		b.fail(fmt.Errorf("set offset of partition %d: %w", partition, err))
		return
	}
	k0 := b.mark()
	b.enc.buf = appendOffsetKey(b.enc.buf, topic, partition)
	v0 := b.mark()
	b.enc.buf = appendOffsetValue(b.enc.buf, next)
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: v0, value0: v0, value1: b.mark()})
}

// PutRepair creates or replaces a repair record.
func (b *Batch) PutRepair(r RepairRecord) {
	if r.ID == "" {
		b.fail(errors.New("put repair: empty id"))
		return
	}
	v, err := encodeRepair(r)
	if err != nil {
		b.fail(err)
		return
	}
	k0 := b.mark()
	b.enc.buf = appendRepairKey(b.enc.buf, r.ID)
	v0 := b.mark()
	b.enc.buf = append(b.enc.buf, v...)
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: v0, value0: v0, value1: b.mark()})
	b.index(familyRepair, r.CreatedAt, r.Dataset, r.Key, r.ID)
}

// index writes the listing and key index entries of a record. Writing them
// again when the record changes is harmless: its id, time, dataset and key
// do not change.
func (b *Batch) index(family byte, at time.Time, dataset, key, id string) {
	k0 := b.mark()
	b.enc.buf = appendListKey(b.enc.buf, family, at, id)
	end := b.mark()
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: end, value0: end, value1: end})
	if dataset == "" || strings.IndexByte(dataset, sep) >= 0 {
		return
	}
	k0 = b.mark()
	b.enc.buf = append(appendKeyIdxPrefix(b.enc.buf, dataset, key, family), id...)
	end = b.mark()
	b.ops = append(b.ops, op{kind: opSet, key0: k0, key1: end, value0: end, value1: end})
}

// Commit applies the batch in one Badger transaction, synced to disk: after
// it returns nil, all of it survives a crash, and before, none of it is
// visible. A batch too big for one transaction fails with an error wrapping
// badger.ErrTxnTooBig and writes nothing; the caller bounds batches with Len.
// A committed batch may be Reset and reused.
func (s *Store) Commit(b *Batch) error {
	errc := make(chan error, 1)
	s.CommitAsync(b, func(err error) { errc <- err })
	return <-errc
}

// CommitAsync is Commit without the wait: done is called once the batch is
// durable, or failed. Batches committed one after another become durable in
// that order, so a caller may prepare its next batch while Badger writes and
// syncs this one. b must not be touched until done is called.
func (s *Store) CommitAsync(b *Batch, done func(error)) {
	if b.err != nil {
		done(fmt.Errorf("commit batch: %w", b.err))
		return
	}
	if len(b.ops) == 0 {
		done(nil)
		return
	}
	// A batch with audit records holds auditMu until it is durable or has
	// failed, so the next one chains onto a durable head: a failed commit
	// leaves no hole in the chain, and its seqs are given out again.
	auditN := b.auditN
	if auditN > 0 {
		s.auditMu.Lock()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	txn := s.db.NewTransaction(true)
	outboxN := b.outboxN
	if auditN > 0 && s.auditTopic != "" {
		outboxN += auditN // each audit record is mirrored through the outbox
	}
	var (
		newKeys     int64
		outboxBytes int64
		seq         = s.nextSeq
		// Badger keeps references to keys until the commit; one arena
		// sized up front holds the outbox keys.
		seqKeys = make([]byte, 0, 9*outboxN)
		audit   auditCommit
	)
	if auditN > 0 {
		audit.head = s.auditHead
	}
	fail := func(err error) {
		txn.Discard()
		if auditN > 0 {
			s.auditMu.Unlock()
		}
		done(fmt.Errorf("commit batch of %d writes: %w", len(b.ops), err))
	}
	outbox := func(value []byte) error {
		k0 := len(seqKeys)
		seqKeys = appendOutboxKey(seqKeys, seq)
		seq++
		outboxBytes += int64(len(value))
		return txn.Set(seqKeys[k0:], value)
	}
	for _, o := range b.ops {
		key := b.enc.buf[o.key0:o.key1]
		value := b.enc.buf[o.value0:o.value1]
		var err error
		switch o.kind {
		case opSet:
			err = txn.Set(key, value)
		case opNewKeyState:
			newKeys++
			err = txn.Set(key, value)
		case opDelete:
			err = txn.Delete(key)
		case opPutKeyState:
			// The key-state counter must stay exact, so look before
			// writing. A key put twice in one batch is found the second
			// time among the transaction's own pending writes.
			_, err = txn.Get(key)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
				newKeys++
				err = nil
			case err != nil:
				err = fmt.Errorf("look up key state: %w", err)
			}
			if err == nil {
				err = txn.Set(key, value)
			}
		case opOutbox:
			err = outbox(value)
		case opAudit:
			err = s.setAudit(txn, &audit, value, key, outbox)
		}
		if err != nil {
			fail(err)
			return
		}
	}
	if outboxN > 0 {
		if err := txn.Set(metaOutboxSeq, encodeOutboxSeq(seq-1)); err != nil {
			fail(err)
			return
		}
	}
	if auditN > 0 {
		if err := txn.Set(metaAuditHead, encodeAuditHead(audit.head)); err != nil {
			fail(err)
			return
		}
	}
	// Seqs are handed out here, under writeMu, in commit order; a failed
	// commit leaves a gap, which Outbox readers do not mind.
	s.nextSeq = seq
	minTimer := b.minTimer
	// CommitWith discards the transaction itself.
	txn.CommitWith(func(err error) {
		if auditN > 0 {
			if err == nil {
				s.auditHead = audit.head
			}
			s.auditMu.Unlock()
		}
		if err != nil {
			done(fmt.Errorf("commit batch: %w", err))
			return
		}
		s.lowerTimerBound(minTimer)
		s.mu.Lock()
		s.keyStates += newKeys
		s.outboxCount += outboxN
		s.outboxBytes += outboxBytes
		s.mu.Unlock()
		done(nil)
	})
}

// setAudit chains one audit record onto the head so far and writes it, with
// its mirror record when the store has an audit topic.
func (s *Store) setAudit(txn *badger.Txn, c *auditCommit, content, keyIdx []byte, outbox func([]byte) error) error {
	key, value := c.chain(content)
	if err := txn.Set(key, value); err != nil {
		return err
	}
	if len(keyIdx) > 0 {
		// The key index entry of a record about a key: its prefix, then
		// the seq this commit gave the record.
		k0 := len(c.arena)
		c.arena = append(c.arena, keyIdx...)
		c.arena = binary.BigEndian.AppendUint64(c.arena, c.head.Seq)
		if err := txn.Set(c.arena[k0:len(c.arena):len(c.arena)], []byte{}); err != nil {
			return err
		}
	}
	if s.auditTopic == "" {
		return nil
	}
	rec, err := auditMirror(s.auditTopic, value)
	if err != nil {
		return err
	}
	return outbox(appendOutboxRecord(nil, &rec))
}
