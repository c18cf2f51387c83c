package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/internal/crashpoint"
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
	// ConfigHash identifies the dataset's effective config. It is stamped on
	// events and audit records; a change is itself audited when the engine
	// starts. Empty: not tracked.
	ConfigHash string
}

// System is a source or target of a dataset.
type System struct {
	Name  string
	Topic string
	// Rename maps this system's column names to dataset column names; the
	// engine inverts it to render repair rows in a target's own names when
	// Rules is nil.
	Rename map[string]string
	// Rules, if set, are the rules this system's rows are normalized with;
	// repair rows are then rendered by Rules.SystemRow: the inverse rename
	// and, under compare.case_insensitive, the target's own spelling of each
	// column.
	Rules *compare.Rules
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

// OutboxGate holds verdicts back while the outbox is full (state.OutboxGate):
// timers stay due, and fire once the publisher has drained it.
type OutboxGate interface {
	// Admits reports whether pending more outbox bytes may be added.
	Admits(pending int64) bool
}

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
	// CheckpointEvery is how long folded changes may wait in memory before
	// they are checkpointed (default 250ms); a negative value checkpoints at
	// every Apply. Checkpoints also come sooner when they grow large, before
	// a sweep and on Flush.
	CheckpointEvery time.Duration
	// Durable, if set, is told the input offsets of each checkpoint once it
	// is on disk: they may then be committed to Kafka. It must not block.
	Durable func(offsets map[string]map[int32]int64)
	// CacheKeys bounds the key states kept decoded in memory (default 200000).
	CacheKeys int
	// Gate, if set, stops sweeps from firing windows while the outbox is
	// full. Default: none (the outbox is unbounded).
	Gate OutboxGate
}

// Engine is the single writer of key states.
type Engine struct {
	store    *state.Store
	datasets map[string]*Dataset
	opts     Options
	log      *slog.Logger
	now      func() time.Time

	// mu serializes folds, sweeps and checkpoints: all read-modify-write
	// key states.
	mu sync.Mutex
	// cache holds key states by dataset \x00 key: the stored state, plus the
	// changes pending for the next checkpoint (pend.dirty). The engine is the
	// only writer, so a clean cached state is the stored state.
	cache map[string]*state.KeyState
	pend  *pending
	// inflight gets the outcome of the checkpoint Badger is writing, if any,
	// and flying holds the ids of the key states it writes: until it is
	// durable, the store still has their older versions, so they must stay
	// cached.
	inflight chan error
	flying   map[string]bool
	// failed is set once a fold or a checkpoint failed: the cache no longer
	// matches what will be stored, so the engine refuses further work.
	failed error

	freeMu sync.Mutex
	free   []*state.Batch

	// guards holds each dataset's blast-radius guard figures and state;
	// guarded by mu.
	guards map[string]*guardState
}

// New returns an engine over store. It records config changes in the audit
// log before it returns.
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
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 250 * time.Millisecond
	}
	if opts.CacheKeys <= 0 {
		opts.CacheKeys = 200_000
	}
	e := &Engine{store: store, datasets: make(map[string]*Dataset), opts: opts, log: opts.Logger, now: opts.Now,
		cache: make(map[string]*state.KeyState), guards: make(map[string]*guardState)}
	e.pend = e.newPending()
	for i := range opts.Datasets {
		d := &opts.Datasets[i]
		e.datasets[d.Name] = d
		e.guards[d.Name] = &guardState{}
	}
	e.initSeries()
	if err := e.recordConfigs(); err != nil {
		return nil, err
	}
	if err := e.initCounts(); err != nil {
		return nil, err
	}
	if err := e.initGuards(); err != nil {
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
			m.repairLatency.WithLabelValues(d.Name, t.Name)
		}
		m.guardTripped.WithLabelValues(d.Name)
	}
}

// initCounts counts, per dataset, the key states and the divergences left
// open by an earlier run, for the open gauge and the blast-radius guard, and
// gives every open divergence a divergence record (a dir written before they
// were kept has none).
func (e *Engine) initCounts() error {
	b := e.store.NewBatch()
	for name := range e.datasets {
		g := e.guards[name]
		err := e.store.ScanKeyStates(name, func(key string, ks *state.KeyState) error {
			g.keys++
			for t, ts := range ks.Targets {
				if ts == nil || ts.Open == nil {
					continue
				}
				g.open++
				if e.opts.Metrics != nil {
					e.opts.Metrics.open.WithLabelValues(name, t, ts.Open.Kind).Inc()
				}
				rec, err := e.store.Divergence(ts.Open.ID)
				if err != nil {
					return err
				}
				if rec == nil {
					o := ts.Open
					b.PutDivergence(state.DivergenceRecord{ID: o.ID, Dataset: name, Target: t, Key: key, Kind: o.Kind,
						State: state.DivergenceOpen, OpenedAt: o.OpenedAt, DetectedAt: o.DetectedAt, RepairID: o.RepairID})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("counting open divergences of %s: %w", name, err)
		}
	}
	if err := e.store.Commit(b); err != nil {
		return fmt.Errorf("recording open divergences: %w", err)
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

// Apply folds items into the key states and queues their writes; they become
// durable together at the next checkpoint. A checkpoint is one synced Badger
// transaction holding every key state changed since the last one, the timer
// index changes, the outbox records and the input offsets: state and offsets
// never disagree on disk. Folding only in memory between checkpoints lets a
// key changed many times, and a window opened and closed, cost one write.
// Apply starts a checkpoint when one is due; Flush forces one and waits.
func (e *Engine) Apply(ctx context.Context, items []Item) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed != nil {
		return e.failed
	}
	e.trim()
	tx := e.begin()
	now := e.now().UTC()
	for i := range items {
		if i%1024 == 0 && ctx.Err() != nil {
			// The items folded so far stay pending with their offsets.
			return ctx.Err()
		}
		it := &items[i]
		switch {
		case it.Event != nil:
			if err := tx.fold(it.Event, now); err != nil {
				return e.fail(err)
			}
		case it.Reject != nil:
			tx.p.batch.AppendOutbox(it.Reject.Record)
			tx.p.outboxed++
			r := it.Reject
			tx.metric(func(m *Metrics) { m.dlq.WithLabelValues(r.Dataset, r.System, r.Reason).Inc() })
		}
		tx.p.offsets[partitionKey{it.Topic, it.Partition}] = it.Offset + 1
		tx.p.items++
		if i == len(items)/2 {
			crashpoint.Hit(crashpoint.MidBatch) // fault injection (crash tests only)
		}
	}
	if tx.err != nil {
		return e.fail(tx.err)
	}
	return e.checkpointIfReady()
}

// Checkpoint starts a checkpoint of what is pending unless one is being
// written, and does not wait: the consumer calls it when it has caught up
// with its input, where latency matters more than folding more changes
// into one write.
func (e *Engine) Checkpoint(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inflight != nil && len(e.inflight) == 0 {
		return e.failed // the sweeper's tick takes what is left
	}
	return e.checkpoint()
}

// Flush makes everything folded so far durable, and waits for it.
func (e *Engine) Flush(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flush()
}

func (e *Engine) flush() error {
	if err := e.checkpoint(); err != nil {
		return err
	}
	return e.waitInflight()
}

// fail stops the engine: the cache may hold changes that will never be
// stored, so nothing more is folded or checkpointed. The process restarts
// from the stored offsets.
func (e *Engine) fail(err error) error {
	if e.failed == nil {
		e.failed = err
	}
	e.waitInflight()
	e.forgetAll()
	e.pend = e.newPending()
	return e.failed
}

// forgetAll drops every cached state.
func (e *Engine) forgetAll() { e.cache = make(map[string]*state.KeyState) }

type partitionKey struct {
	topic     string
	partition int32
}

// timerKey is one entry of the timer index.
type timerKey struct {
	dataset, target, key string
	deadline             int64 // unix nanos
}

// pending is what was folded since the last checkpoint: the ids of the
// changed key states (the states themselves are in the cache) and the writes
// that go with them.
type pending struct {
	batch   *state.Batch // outbox, DLQ and repair records, in the order they were made
	dirty   []string     // changed key states, by dataset \x00 key, in first-change order
	isDirty map[string]bool
	created map[string]bool // dirty states the store does not hold yet
	// timers holds the net change to the timer index: true adds an entry,
	// false deletes a stored one. A window opened and closed between two
	// checkpoints never reaches the store.
	timers  map[timerKey]bool
	offsets map[partitionKey]int64
	// minDeadline is the earliest deadline added (unix nanos): the sweeper
	// checkpoints before it is due, since it reads due timers from the store.
	minDeadline int64
	// records counts the repair and divergence records written: readers of
	// those records flush them first.
	records int
	// effects and counts move metrics once the checkpoint is durable.
	effects  []func(*Metrics)
	counts   map[eventCount]int
	outboxed int
	items    int
	since    time.Time // when the first change was folded
}

// Bounds of one checkpoint, well inside Badger's transaction limits (about
// 100k entries with the default 64 MB memtable).
const (
	maxDirty       = 16_000
	maxTimerWrites = 32_000
	maxBatchOps    = 16_000
)

func (e *Engine) newPending() *pending {
	return &pending{batch: e.getBatch(), isDirty: make(map[string]bool), created: make(map[string]bool),
		timers: make(map[timerKey]bool), offsets: make(map[partitionKey]int64), counts: make(map[eventCount]int),
		minDeadline: math.MaxInt64}
}

func (p *pending) empty() bool {
	return len(p.dirty) == 0 && len(p.timers) == 0 && len(p.offsets) == 0 && p.batch.Len() == 0
}

// checkpointIfReady starts a checkpoint that is due, unless the one before
// is still being written and this one is within its bounds: folding goes on
// meanwhile, so a slow fsync makes checkpoints larger, not the input wait.
func (e *Engine) checkpointIfReady() error {
	p := e.pend
	if !p.due(e.opts.CheckpointEvery, time.Now()) {
		return nil
	}
	if e.inflight != nil && len(e.inflight) == 0 && !p.full() {
		return e.failed
	}
	return e.checkpoint()
}

// full says the pending checkpoint has reached a bound: it must go now.
func (p *pending) full() bool {
	return len(p.dirty) >= maxDirty || len(p.timers) >= maxTimerWrites || p.batch.Len() >= maxBatchOps
}

func (p *pending) due(every time.Duration, now time.Time) bool {
	switch {
	case p.empty():
		return false
	case every <= 0, p.full():
		return true
	}
	return !p.since.IsZero() && now.Sub(p.since) >= every
}

func (p *pending) touch(id string, created bool) {
	if p.isDirty[id] {
		return
	}
	if p.since.IsZero() {
		p.since = time.Now()
	}
	p.isDirty[id] = true
	p.dirty = append(p.dirty, id)
	if created {
		p.created[id] = true
	}
}

func (p *pending) moveTimer(dataset, target, key string, old, new time.Time) {
	if old.Equal(new) {
		return
	}
	if p.since.IsZero() {
		p.since = time.Now()
	}
	if !old.IsZero() {
		k := timerKey{dataset, target, key, old.UnixNano()}
		if add, ok := p.timers[k]; ok && add {
			delete(p.timers, k) // added since the last checkpoint: never stored
		} else {
			p.timers[k] = false
		}
	}
	if !new.IsZero() {
		k := timerKey{dataset, target, key, new.UnixNano()}
		if add, ok := p.timers[k]; ok && !add {
			delete(p.timers, k) // a stored entry that stays
		} else {
			p.timers[k] = true
		}
		p.minDeadline = min(p.minDeadline, k.deadline)
	}
}

// checkpoint submits everything pending as one transaction, after the one
// in flight is durable: a failed checkpoint must never be followed by a later
// one storing offsets past its lost changes. It does not wait.
func (e *Engine) checkpoint() error {
	if err := e.waitInflight(); err != nil {
		return err
	}
	p := e.pend
	if p.empty() {
		return nil
	}
	e.pend = e.newPending()
	b := p.batch
	for _, id := range p.dirty {
		ks := e.cache[id]
		if p.created[id] && ks.Source == nil && len(ks.Targets) == 0 {
			delete(e.cache, id) // looked up (a stale timer) but never shown by any system
			continue
		}
		ds, key, _ := cutNul(id)
		b.PutKnownKeyState(ds, key, ks, p.created[id])
		if g := e.guards[ds]; g != nil && p.created[id] {
			g.keys++
		}
	}
	for k, add := range p.timers {
		at := time.Unix(0, k.deadline)
		if add {
			b.MoveTimer(k.dataset, k.target, k.key, time.Time{}, at)
		} else {
			b.MoveTimer(k.dataset, k.target, k.key, at, time.Time{})
		}
	}
	var offsets map[string]map[int32]int64
	if len(p.offsets) > 0 {
		offsets = make(map[string]map[int32]int64)
		for tp, next := range p.offsets {
			b.SetOffset(tp.topic, tp.partition, next)
			if offsets[tp.topic] == nil {
				offsets[tp.topic] = make(map[int32]int64)
			}
			offsets[tp.topic][tp.partition] = next
		}
	}
	done := make(chan error, 1)
	e.inflight, e.flying = done, p.isDirty
	started := time.Now()
	e.store.CommitAsync(b, func(err error) {
		if err != nil {
			done <- fmt.Errorf("committing a checkpoint of %d key states: %w", len(p.dirty), err)
			return
		}
		// Fault injection (crash tests only): synced to Badger, not yet
		// committed to Kafka.
		crashpoint.Hit(crashpoint.AfterSync)
		e.putBatch(b)
		e.durable(p, offsets, started)
		done <- nil
	})
	return nil
}

// durable runs what waits for a checkpoint to be on disk: metrics, the
// outbox notification, and the offsets' way to Kafka.
func (e *Engine) durable(p *pending, offsets map[string]map[int32]int64, started time.Time) {
	if m := e.opts.Metrics; m != nil {
		// The checkpoint is counted before the events it made durable, so
		// that whoever sees every event counted sees its checkpoint too.
		m.batches.Observe(time.Since(started).Seconds())
		for _, f := range p.effects {
			f(m)
		}
		for c, n := range p.counts {
			if c.op == "" {
				m.ignored.WithLabelValues(c.dataset, c.system).Add(float64(n))
			} else {
				m.events.WithLabelValues(c.dataset, c.system, c.op).Add(float64(n))
			}
		}
	}
	if p.outboxed > 0 && e.opts.Notifier != nil {
		e.opts.Notifier.Notify()
	}
	if offsets != nil && e.opts.Durable != nil {
		e.opts.Durable(offsets)
	}
}

// waitInflight waits for the checkpoint in flight, if any.
func (e *Engine) waitInflight() error {
	if e.inflight != nil {
		err := <-e.inflight
		e.inflight, e.flying = nil, nil
		if err != nil && e.failed == nil {
			e.failed = err
			e.forgetAll()
			e.pend = e.newPending()
		}
	}
	return e.failed
}

// txn is one pass of folding (an Apply or a sweep) into the pending
// checkpoint.
type txn struct {
	e *Engine
	p *pending
	// scratch backs the comparison views pair builds, one at a time.
	scratch pairScratch
	// err is the first failure of a step that has no error to return (the
	// rendering of an event); it stops the engine.
	err error
}

func (e *Engine) begin() *txn { return &txn{e: e, p: e.pend} }

// getBatch reuses the arena of a committed batch: a checkpoint's batch holds
// a few megabytes, and growing it afresh each time shows in profiles.
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

// loadByString returns the key state of dataset/ks, from the cache or the
// store, or a new one, and marks it changed.
func (t *txn) loadByString(dataset, ks string, key compare.Key) (*state.KeyState, error) {
	id := dataset + "\x00" + ks
	s, ok := t.e.cache[id]
	created := false
	if !ok {
		var err error
		s, err = t.e.store.KeyState(dataset, ks)
		if err != nil {
			return nil, fmt.Errorf("loading state of %s key %s: %w", dataset, ks, err)
		}
		if s == nil {
			s = &state.KeyState{Key: key}
			created = true
		}
		if s.Targets == nil {
			s.Targets = make(map[string]*state.TargetState)
		}
		t.e.cache[id] = s
	}
	t.p.touch(id, created)
	return s, nil
}

func (t *txn) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *txn) metric(f func(*Metrics)) {
	if t.e.opts.Metrics != nil {
		t.p.effects = append(t.p.effects, f)
	}
}

// trim evicts arbitrary clean entries past the cache bound; hot keys come
// back at the cost of one read. A state changed since the last durable
// checkpoint (pending, or in the checkpoint being written) is never
// evicted: the store does not hold it yet. Without trimming while a
// checkpoint is in flight the cache would never shrink, since under load
// one almost always is.
func (e *Engine) trim() {
	if len(e.cache) <= e.opts.CacheKeys {
		return
	}
	if e.inflight != nil && len(e.inflight) > 0 {
		// Written already: collect it, so its states count as clean.
		if err := e.waitInflight(); err != nil {
			return
		}
	}
	target := e.opts.CacheKeys * 3 / 4
	for id := range e.cache {
		if len(e.cache) <= target {
			break
		}
		if !e.pend.isDirty[id] && !e.flying[id] {
			delete(e.cache, id)
		}
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
