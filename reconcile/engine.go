package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/state"
)

// Dataset is what the engine needs of one configured dataset.
type Dataset struct {
	Name           string
	Window         time.Duration
	SourceComplete bool
	Source         System
	Targets        []System
	// PayloadFull keeps the latest source row so repairs can carry it.
	PayloadFull bool
}

// System is a source or target of a dataset.
type System struct {
	Name  string
	Topic string
	// Rename maps this system's column names to dataset column names; the
	// engine inverts it to render repair rows in a target's own names.
	Rename map[string]string
}

// Outputs are recon's output topics.
type Outputs struct {
	Divergences, Repairs, DLQ string
}

// Progress answers whether recon has read a topic far enough to judge a
// window: every partition of the topic this instance reads was caught up to
// its high watermark at or after `since`, or its newest consumed record is at
// least `window` newer than the source change at `change`.
type Progress interface {
	CaughtUp(topic string, since, change time.Time, window time.Duration) bool
}

// Notifier is woken after a commit that added outbox records.
type Notifier interface{ Notify() }

// Options configure an Engine.
type Options struct {
	Datasets     []Dataset
	Outputs      Outputs
	RulesVersion string
	Hasher       *compare.Hasher
	Planner      *repair.Planner
	Progress     Progress
	Notifier     Notifier // may be nil
	Metrics      *Metrics // may be nil
	Logger       *slog.Logger
	Now          func() time.Time // default time.Now
	// MaxBatch bounds the events of one Badger transaction (default 5000).
	MaxBatch int
	// CacheKeys bounds the key states kept decoded in memory (default 200000).
	CacheKeys int
}

// Engine is the single writer of key states.
type Engine struct {
	store    *state.Store
	datasets map[string]*Dataset
	opts     Options
	log      *slog.Logger
	now      func() time.Time

	// mu serializes batches and sweeps: both read-modify-write key states.
	mu sync.Mutex
	// cache holds committed key states by dataset \x00 key. The engine is
	// the only writer, so a cached state is the stored state; a failed commit
	// drops the states it touched, which may hold uncommitted changes.
	cache map[string]*state.KeyState

	freeMu sync.Mutex
	free   []*state.Batch
}

// New returns an engine over store.
func New(store *state.Store, opts Options) (*Engine, error) {
	if opts.Hasher == nil || opts.Planner == nil || opts.Progress == nil {
		return nil, fmt.Errorf("reconcile: hasher, planner and progress are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 5000
	}
	if opts.CacheKeys <= 0 {
		opts.CacheKeys = 200_000
	}
	e := &Engine{store: store, datasets: make(map[string]*Dataset), opts: opts, log: opts.Logger, now: opts.Now,
		cache: make(map[string]*state.KeyState)}
	for i := range opts.Datasets {
		d := &opts.Datasets[i]
		e.datasets[d.Name] = d
	}
	e.initSeries()
	if err := e.initOpenGauge(); err != nil {
		return nil, err
	}
	return e, nil
}

// initSeries creates every series whose labels config fixes, at zero, so
// dashboards and alerts see 0 rather than nothing before the first event.
func (e *Engine) initSeries() {
	m := e.opts.Metrics
	if m == nil {
		return
	}
	kinds := []compare.DivergenceKind{compare.Missing, compare.Orphan, compare.Lagging, compare.Conflict}
	for _, d := range e.datasets {
		for _, sys := range append([]System{d.Source}, d.Targets...) {
			for _, op := range []compare.Op{compare.OpUpsert, compare.OpDelete} {
				m.events.WithLabelValues(d.Name, sys.Name, op.String())
			}
			m.ignored.WithLabelValues(d.Name, sys.Name)
			m.toastUnresolved.WithLabelValues(d.Name, sys.Name)
		}
		for _, t := range d.Targets {
			for _, k := range kinds {
				m.open.WithLabelValues(d.Name, t.Name, string(k))
				m.opened.WithLabelValues(d.Name, t.Name, string(k))
				m.resolved.WithLabelValues(d.Name, t.Name, string(k))
			}
			m.convergence.WithLabelValues(d.Name, t.Name)
			m.detection.WithLabelValues(d.Name, t.Name)
		}
	}
}

// initOpenGauge counts the divergences left open by an earlier run so the
// gauge is right after a restart.
func (e *Engine) initOpenGauge() error {
	if e.opts.Metrics == nil {
		return nil
	}
	for name := range e.datasets {
		err := e.store.ScanKeyStates(name, func(_ string, ks *state.KeyState) error {
			for t, ts := range ks.Targets {
				if ts.Open != nil {
					e.opts.Metrics.open.WithLabelValues(name, t, ts.Open.Kind).Inc()
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("counting open divergences of %s: %w", name, err)
		}
	}
	return nil
}

// Item is one consumed record, in partition order: a change event, a record
// for the dead-letter queue, or neither (a tombstone or another non-change).
// Every item advances its partition's stored offset.
type Item struct {
	Topic     string
	Partition int32
	Offset    int64
	Event     *compare.ChangeEvent
	Reject    *Reject
}

// Reject is a record recon could not decode, ready for the dead-letter queue.
type Reject struct {
	Dataset, System, Reason string
	Record                  state.OutboxRecord
}

// Apply folds items into state and commits them with their offsets, in
// chunks of at most MaxBatch items, each chunk one durable transaction. While
// Badger writes and syncs chunk k, chunk k+1 is folded; it is submitted only
// once chunk k is durable, so a failed commit never leaves a later chunk's
// offsets stored over lost changes. Apply returns once everything is durable.
func (e *Engine) Apply(ctx context.Context, items []Item) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trim()
	var prev chan error
	wait := func() error {
		if prev == nil {
			return nil
		}
		err := <-prev
		prev = nil
		return err
	}
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			wait()
			return err
		}
		n := min(len(items), e.opts.MaxBatch)
		tx, err := e.foldChunk(items[:n])
		if err != nil {
			wait()
			e.forgetAll() // the chunk changed cached states it will not commit
			return err
		}
		if err := wait(); err != nil {
			e.forgetAll()
			return err
		}
		prev = make(chan error, 1)
		tx.submit(prev)
		items = items[n:]
	}
	if err := wait(); err != nil {
		e.forgetAll()
		return err
	}
	return nil
}

func (e *Engine) foldChunk(items []Item) (*txn, error) {
	tx := e.begin()
	tx.started = time.Now()
	now := e.now().UTC()
	// One stored offset per partition, written once: items of a partition
	// come in offset order.
	type tp struct {
		topic     string
		partition int32
	}
	next := make(map[tp]int64)
	for i := range items {
		it := &items[i]
		switch {
		case it.Event != nil:
			if err := tx.fold(it.Event, now); err != nil {
				return nil, err
			}
		case it.Reject != nil:
			tx.batch.AppendOutbox(it.Reject.Record)
			tx.outboxed++
			r := it.Reject
			tx.metric(func(m *Metrics) { m.dlq.WithLabelValues(r.Dataset, r.System, r.Reason).Inc() })
		}
		next[tp{it.Topic, it.Partition}] = it.Offset + 1
	}
	if tx.err != nil {
		return nil, tx.err
	}
	for p, n := range next {
		tx.batch.SetOffset(p.topic, p.partition, n)
	}
	return tx, nil
}

// forgetAll drops every cached state: after a failed commit the cache may
// hold changes that never reached the store.
func (e *Engine) forgetAll() { e.cache = make(map[string]*state.KeyState) }

// txn is one read-modify-write pass: key states loaded once, changed in
// memory, written with everything else in one state.Batch.
type txn struct {
	e        *Engine
	batch    *state.Batch
	states   map[string]*state.KeyState // by dataset \x00 key
	created  map[string]bool            // states the store does not hold yet
	order    []string
	outboxed int
	// effects and counts are applied to metrics only once the commit succeeded.
	effects []func(*Metrics)
	counts  map[eventCount]int
	// err is the first failure of a step that has no error to return (the
	// rendering of an event); a failed transaction is never committed.
	err     error
	started time.Time
}

func (e *Engine) begin() *txn {
	return &txn{e: e, batch: e.getBatch(), states: make(map[string]*state.KeyState), created: make(map[string]bool),
		counts: make(map[eventCount]int)}
}

// getBatch reuses the arena of a committed batch: a chunk's batch holds a
// few megabytes, and growing it afresh each time shows in profiles.
func (e *Engine) getBatch() *state.Batch {
	e.freeMu.Lock()
	defer e.freeMu.Unlock()
	if n := len(e.free); n > 0 {
		b := e.free[n-1]
		e.free = e.free[:n-1]
		return b
	}
	return e.store.NewBatch()
}

func (e *Engine) putBatch(b *state.Batch) {
	b.Reset()
	e.freeMu.Lock()
	defer e.freeMu.Unlock()
	if len(e.free) < 2 {
		e.free = append(e.free, b)
	}
}

func (t *txn) load(dataset string, key compare.Key) (*state.KeyState, string, error) {
	ks := key.String()
	s, err := t.loadByString(dataset, ks, key)
	return s, ks, err
}

// loadByString returns the key state of dataset/ks, from this transaction,
// the cache or the store, or a new one.
func (t *txn) loadByString(dataset, ks string, key compare.Key) (*state.KeyState, error) {
	id := dataset + "\x00" + ks
	if s, ok := t.states[id]; ok {
		return s, nil
	}
	s, ok := t.e.cache[id]
	if !ok {
		var err error
		s, err = t.e.store.KeyState(dataset, ks)
		if err != nil {
			return nil, fmt.Errorf("loading state of %s key %s: %w", dataset, ks, err)
		}
		if s == nil {
			s = &state.KeyState{Key: key}
			t.created[id] = true
		}
	}
	if s.Targets == nil {
		s.Targets = make(map[string]*state.TargetState)
	}
	t.states[id] = s
	t.order = append(t.order, id)
	return s, nil
}

func (t *txn) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *txn) metric(f func(*Metrics)) {
	if t.e.opts.Metrics != nil {
		t.effects = append(t.effects, f)
	}
}

// prepare puts the touched key states into the batch.
func (t *txn) prepare() {
	for _, id := range t.order {
		ks := t.states[id]
		if t.created[id] && ks.Source == nil && len(ks.Targets) == 0 {
			delete(t.states, id) // looked up (a stale timer) but never shown by any system
			continue
		}
		ds, key, _ := cutNul(id)
		t.batch.PutKnownKeyState(ds, key, ks, t.created[id])
	}
}

// commit writes the transaction and waits until it is durable.
func (t *txn) commit() error {
	done := make(chan error, 1)
	t.submit(done)
	return <-done
}

// submit hands the transaction to the store. The cache takes its states at
// once, so the next chunk folds on top of them; done gets the outcome.
func (t *txn) submit(done chan<- error) {
	t.prepare()
	t.e.remember(t.states)
	t.e.store.CommitAsync(t.batch, func(err error) {
		if err != nil {
			done <- fmt.Errorf("committing state batch: %w", err)
			return
		}
		t.e.putBatch(t.batch)
		if m := t.e.opts.Metrics; m != nil {
			for _, f := range t.effects {
				f(m)
			}
			for c, n := range t.counts {
				if c.op == "" {
					m.ignored.WithLabelValues(c.dataset, c.system).Add(float64(n))
				} else {
					m.events.WithLabelValues(c.dataset, c.system, c.op).Add(float64(n))
				}
			}
		}
		if m := t.e.opts.Metrics; m != nil && !t.started.IsZero() {
			m.batches.Observe(time.Since(t.started).Seconds())
		}
		if t.outboxed > 0 && t.e.opts.Notifier != nil {
			t.e.opts.Notifier.Notify()
		}
		done <- nil
	})
}

// remember caches the states of a submitted transaction.
func (e *Engine) remember(states map[string]*state.KeyState) {
	for id, s := range states {
		e.cache[id] = s
	}
}

// trim evicts arbitrary entries past the cache bound; hot keys come back at
// the cost of one read. Call it only with no commit in flight: an evicted
// state must already be in the store.
func (e *Engine) trim() {
	if len(e.cache) <= e.opts.CacheKeys {
		return
	}
	target := e.opts.CacheKeys * 3 / 4
	for id := range e.cache {
		if len(e.cache) <= target {
			break
		}
		delete(e.cache, id)
	}
}

func cutNul(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
