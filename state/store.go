package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Options tune Open. The zero value is what production uses.
type Options struct {
	// Logger receives Badger's own logs: errors and warnings at warn (the
	// store returns the errors that matter to its callers), the rest at
	// debug. Default: discard.
	Logger *slog.Logger
	// InMemory keeps everything in memory and dir is ignored. For nothing
	// but quick experiments; tests use a real dir. Default: false.
	InMemory bool
	// ReadOnly opens an existing state dir for reading only, next to other
	// readers but not next to a running recon: offline tools such as
	// `recon audit verify`. Nothing is written, not even a layout version,
	// and every commit fails. Default: false.
	ReadOnly bool
	// AuditTopic, if set, mirrors every audit record to this topic through
	// the outbox, as JSON, in the transaction that appends it. Default: none.
	AuditTopic string
}

// Store is recon's state in one Badger database. It is safe for concurrent
// use: one writer (the reconcile engine, through Commit), the outbox
// publisher (Outbox, DeleteOutbox), approvals (PutRepair) and any number of
// readers. Writes are serialized by writeMu, so Badger transactions never
// conflict and conflict detection is off.
type Store struct {
	db  *badger.DB
	dir string

	// writeMu serializes every write transaction, and guards nextSeq.
	writeMu sync.Mutex
	nextSeq uint64 // the seq the next outbox record gets

	// auditMu is held by a commit with audit records from before it reads
	// auditHead until it is durable or failed (see CommitAsync); it guards
	// auditHead, the durable head that the next audit record chains onto.
	// It is taken before writeMu.
	auditMu    sync.Mutex
	auditHead  AuditHead
	auditTopic string

	// mu guards the counters, which readers (metrics) take without waiting
	// for a commit. They change only after a write transaction succeeded.
	mu           sync.Mutex
	keyStates    int64
	outboxCount  int
	outboxBytes  int64
	outboxLowSeq uint64 // no outbox record has a smaller seq; see Outbox
	// outboxShrunk is closed, and replaced, whenever records leave the
	// outbox: an OutboxGate waiting for it to drain wakes on it.
	outboxShrunk chan struct{}

	// timerLow is a lower bound of every timer's deadline (unix nanos):
	// timer scans seek there instead of walking the deleted timers that
	// Badger keeps until compaction, which would grow without bound. A
	// commit that sets a timer lowers it; a scan raises it to the earliest
	// timer found, unless a commit (timerGen) moved it meanwhile.
	timerLow int64
	timerGen uint64

	stopGC chan struct{}
	gcDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

func (s *Store) lowerTimerBound(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < s.timerLow {
		s.timerLow = n
		s.timerGen++
	}
}

func (s *Store) timerBound() (int64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timerLow, s.timerGen
}

// raiseTimerBound records that no timer is earlier than n, as found by a
// scan that started at generation gen.
func (s *Store) raiseTimerBound(n int64, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen == s.timerGen && n > s.timerLow {
		s.timerLow = n
	}
}

// timerSeek is where a timer scan starts.
func timerSeek(low int64) []byte {
	if low <= 0 {
		return timerPrefix
	}
	return binary.BigEndian.AppendUint64(append([]byte(nil), timerPrefix...), uint64(low))
}

// Open opens (or creates) the state dir. Every commit is synced: when Commit,
// DeleteOutbox or PutRepair returns nil the write survives a crash. A dir
// written with another LayoutVersion is refused with a *LayoutVersionError.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	name := dir
	if opts.InMemory {
		dir, name = "", "(in memory)"
	} else if opts.ReadOnly {
		// Badger's own word for this is "no manifest found".
		if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err != nil {
			return nil, fmt.Errorf("open state dir %s: not a recon state dir: %w", name, err)
		}
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithInMemory(opts.InMemory).
		WithReadOnly(opts.ReadOnly).
		WithLogger(badgerLogger{logger.With("component", "badger")}).
		// Writes are serialized by Store.writeMu and never read-modify-write
		// across transactions, so tracking conflicts would only cost memory.
		WithDetectConflicts(false).
		// Badger's metrics are process-global expvars; recon exports its own.
		WithMetricsEnabled(false).
		// Key states are rewritten on every change: keep them in the value
		// log so the LSM tree moves pointers, not rows, through memtables
		// and compactions. The value-log GC below reclaims the old copies.
		WithValueThreshold(256)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open state dir %s: %w", name, err)
	}
	s := &Store{db: db, dir: name, auditTopic: opts.AuditTopic, outboxShrunk: make(chan struct{})}
	if opts.ReadOnly {
		err = s.checkLayout()
	} else if err = s.init(); err == nil {
		err = s.buildIndex()
	}
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if !opts.InMemory && !opts.ReadOnly {
		s.stopGC, s.gcDone = make(chan struct{}), make(chan struct{})
		go s.valueLogGC(time.Minute, logger)
	}
	return s, nil
}

// checkLayout checks the layout version of a store opened read-only.
func (s *Store) checkLayout() error {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyVersion)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("state dir %s has no layout version: not a recon state dir", s.dir)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			have, err := decodeLayoutVersion(v)
			if err == nil && have != LayoutVersion {
				err = &LayoutVersionError{Dir: s.dir, Have: have, Want: LayoutVersion}
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("check layout version of %s: %w", s.dir, err)
	}
	return nil
}

// init checks or writes the layout version, then computes the counters that
// are kept in memory only, the next outbox seq and the audit chain head.
func (s *Store) init() error {
	err := s.db.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(keyVersion)
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err // present: checkLayout reads it
		}
		it := txn.NewIterator(badger.IteratorOptions{})
		it.Rewind()
		empty := !it.Valid()
		it.Close()
		if !empty {
			return fmt.Errorf("state dir %s has data but no layout version: not a recon state dir", s.dir)
		}
		return txn.Set(keyVersion, encodeLayoutVersion(LayoutVersion))
	})
	if err != nil {
		return fmt.Errorf("check layout version of %s: %w", s.dir, err)
	}
	if err := s.checkLayout(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error {
		var lastSeq uint64
		item, err := txn.Get(metaOutboxSeq)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("read last outbox seq: %w", err)
		default:
			if err := item.Value(func(v []byte) (err error) { lastSeq, err = decodeOutboxSeq(v); return err }); err != nil {
				return fmt.Errorf("read last outbox seq: %w", err)
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: keyStatePrefix})
		for it.Rewind(); it.Valid(); it.Next() {
			s.keyStates++
		}
		it.Close()
		s.outboxLowSeq = lastSeq + 1
		it = txn.NewIterator(badger.IteratorOptions{Prefix: outboxPrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, err := decodeOutboxKey(it.Item().Key())
			if err != nil {
				return err
			}
			if s.outboxCount == 0 {
				s.outboxLowSeq = seq
			}
			// The meta key is written with the records; a record above
			// it means the store is not what this code wrote.
			if seq > lastSeq {
				return fmt.Errorf("outbox record %d is past the last seq %d: %w", seq, lastSeq, ErrCorrupt)
			}
			n, err := valueLen(it.Item())
			if err != nil {
				return fmt.Errorf("outbox record %d: %w", seq, err)
			}
			s.outboxCount++
			s.outboxBytes += n
		}
		s.nextSeq = lastSeq + 1
		return s.loadAuditHead(txn)
	})
}

// Close flushes and closes the database. Calls after the first return the
// first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopGC != nil {
			close(s.stopGC)
			<-s.gcDone
		}
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// valueLogGC rewrites value-log files that are mostly stale copies of key
// states, every interval until Close.
func (s *Store) valueLogGC(interval time.Duration, log *slog.Logger) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
		}
		// One call rewrites at most one file; keep going while it finds work.
		for {
			err := s.db.RunValueLogGC(0.5)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					log.Warn("value log GC failed", "err", err)
				}
				break
			}
			select {
			case <-s.stopGC:
				return
			default:
			}
		}
	}
}

// KeyState returns the state of one key, or (nil, nil) if the store has
// none. key is the canonical key string.
func (s *Store) KeyState(dataset, key string) (*KeyState, error) {
	var ks *KeyState
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendKeyStateKey(nil, dataset, key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) { ks, err = decodeKeyState(v); return err })
	})
	if err != nil {
		return nil, fmt.Errorf("read key state %s/%q: %w", dataset, key, err)
	}
	return ks, nil
}

// ScanKeyStates calls fn for every key state of dataset, in key byte order,
// from one consistent snapshot. It stops at fn's first error and returns it.
func (s *Store) ScanKeyStates(dataset string, fn func(key string, ks *KeyState) error) error {
	prefix := keyStateDatasetPrefix(dataset)
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := string(item.Key()[len(prefix):])
			var ks *KeyState
			if err := item.Value(func(v []byte) (err error) { ks, err = decodeKeyState(v); return err }); err != nil {
				return fmt.Errorf("scan key states of %s: key %q: %w", dataset, key, err)
			}
			if err := fn(key, ks); err != nil {
				return err
			}
		}
		return nil
	})
}

// Offsets returns, per topic and partition, the next offset to read: the
// offsets committed with the state, which are the truth on restart.
func (s *Store) Offsets() (map[string]map[int32]int64, error) {
	out := map[string]map[int32]int64{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: offsetPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			topic, p, err := decodeOffsetKey(it.Item().Key())
			if err != nil {
				return err
			}
			var next int64
			if err := it.Item().Value(func(v []byte) (err error) { next, err = decodeOffset(v); return err }); err != nil {
				return fmt.Errorf("topic %s partition %d: %w", topic, p, err)
			}
			if out[topic] == nil {
				out[topic] = map[int32]int64{}
			}
			out[topic][p] = next
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read offsets: %w", err)
	}
	return out, nil
}

// DueTimers returns up to limit timers whose deadline is at or before now,
// oldest first (ties in dataset, target, key order). limit <= 0 means no
// limit. Only keys are read: the iteration stops at the first future
// deadline.
func (s *Store) DueTimers(now time.Time, limit int) ([]Timer, error) {
	var out []Timer
	if now.Before(minDeadline) {
		return nil, nil // no timer can be due: deadlines start at 1970
	}
	cutoff := int64(math.MaxInt64)
	if !now.After(maxDeadline) {
		cutoff = now.UnixNano()
	}
	low, _ := s.timerBound()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: timerPrefix})
		defer it.Close()
		for it.Seek(timerSeek(low)); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			n, err := timerDeadline(it.Item().Key())
			if err != nil {
				return err
			}
			if n > cutoff {
				return nil
			}
			t, err := decodeTimerKey(it.Item().Key())
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read due timers: %w", err)
	}
	return out, nil
}

// NextDeadline returns the earliest timer deadline, and false if there are
// no timers. The sweeper sleeps until then (or until a commit sets an earlier
// one, which the engine knows without asking).
func (s *Store) NextDeadline() (time.Time, bool, error) {
	var (
		t  time.Time
		ok bool
	)
	low, gen := s.timerBound()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: timerPrefix})
		defer it.Close()
		it.Seek(timerSeek(low))
		if !it.Valid() {
			s.raiseTimerBound(math.MaxInt64, gen)
			return nil
		}
		n, err := timerDeadline(it.Item().Key())
		if err != nil {
			return err
		}
		s.raiseTimerBound(n, gen)
		t, ok = time.Unix(0, n).UTC(), true
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read next deadline: %w", err)
	}
	return t, ok, nil
}

// Stats returns the number of key states and Badger's on-disk sizes. keys is
// exact; the sizes are Badger's own figures, which it refreshes periodically.
func (s *Store) Stats() (keys int64, lsmBytes, vlogBytes int64) {
	s.mu.Lock()
	keys = s.keyStates
	s.mu.Unlock()
	lsmBytes, vlogBytes = s.db.Size()
	return keys, lsmBytes, vlogBytes
}

// badgerLogger sends Badger's logs to slog. Badger logs errors it also
// returns, and errors it recovers from, so they go at warn: the store's
// caller decides what is an error.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

var _ badger.Logger = badgerLogger{}
