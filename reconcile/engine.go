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
	// MaxBatch bounds the events of one Badger transaction (default 2000).
	MaxBatch int
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
		opts.MaxBatch = 2000
	}
	e := &Engine{store: store, datasets: make(map[string]*Dataset), opts: opts, log: opts.Logger, now: opts.Now}
	for i := range opts.Datasets {
		d := &opts.Datasets[i]
		e.datasets[d.Name] = d
	}
	if err := e.initOpenGauge(); err != nil {
		return nil, err
	}
	return e, nil
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
// chunks of at most MaxBatch items, each chunk one durable transaction.
func (e *Engine) Apply(ctx context.Context, items []Item) error {
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(items), e.opts.MaxBatch)
		if err := e.applyChunk(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

func (e *Engine) applyChunk(items []Item) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	now := e.now().UTC()
	tx := e.begin()
	var dlq []Reject
	for i := range items {
		it := &items[i]
		switch {
		case it.Event != nil:
			if err := tx.fold(it.Event, now); err != nil {
				return err
			}
		case it.Reject != nil:
			tx.batch.AppendOutbox(it.Reject.Record)
			tx.outboxed++
			dlq = append(dlq, *it.Reject)
		}
		tx.batch.SetOffset(it.Topic, it.Partition, it.Offset+1)
	}
	if err := tx.commit(); err != nil {
		return err
	}
	if m := e.opts.Metrics; m != nil {
		for _, r := range dlq {
			m.dlq.WithLabelValues(r.Dataset, r.System, r.Reason).Inc()
		}
		m.batches.Observe(time.Since(start).Seconds())
	}
	return nil
}

// txn is one read-modify-write pass: key states loaded once, changed in
// memory, written with everything else in one state.Batch.
type txn struct {
	e        *Engine
	batch    *state.Batch
	states   map[string]*state.KeyState // by dataset \x00 key
	order    []string
	outboxed int
	// effects are applied to metrics only once the commit succeeded.
	effects []func(*Metrics)
}

func (e *Engine) begin() *txn {
	return &txn{e: e, batch: e.store.NewBatch(), states: make(map[string]*state.KeyState)}
}

func (t *txn) load(dataset string, key compare.Key) (*state.KeyState, string, error) {
	ks := key.String()
	id := dataset + "\x00" + ks
	if s, ok := t.states[id]; ok {
		return s, ks, nil
	}
	s, err := t.e.store.KeyState(dataset, ks)
	if err != nil {
		return nil, ks, fmt.Errorf("loading state of %s key %s: %w", dataset, ks, err)
	}
	if s == nil {
		s = &state.KeyState{Key: key, Targets: make(map[string]*state.TargetState)}
	}
	if s.Targets == nil {
		s.Targets = make(map[string]*state.TargetState)
	}
	t.states[id] = s
	t.order = append(t.order, id)
	return s, ks, nil
}

func (t *txn) metric(f func(*Metrics)) {
	if t.e.opts.Metrics != nil {
		t.effects = append(t.effects, f)
	}
}

func (t *txn) commit() error {
	for _, id := range t.order {
		ds, key, _ := cutNul(id)
		t.batch.PutKeyState(ds, key, t.states[id])
	}
	if err := t.e.store.Commit(t.batch); err != nil {
		return fmt.Errorf("committing state batch: %w", err)
	}
	for _, f := range t.effects {
		f(t.e.opts.Metrics)
	}
	if t.outboxed > 0 && t.e.opts.Notifier != nil {
		t.e.opts.Notifier.Notify()
	}
	return nil
}

func cutNul(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
