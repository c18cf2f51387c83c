package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/state"
)

// Decoder turns one record's bytes into a Decoded change. Decoders are pure
// and safe for concurrent use; one that waits on I/O (the Avro decoders fetch
// writer schemas) also implements ContextDecoder, which the consume loop
// prefers.
type Decoder interface {
	Decode(key, value []byte, m Meta) (Decoded, error)
}

// Route is what recon does with the records of one input topic.
type Route struct {
	Dataset string
	System  string
	Topic   string
	Decoder Decoder
	Rules   *compare.Rules
	// Hasher, when set, computes column hashes while decoding, in parallel.
	Hasher *compare.Hasher
	// ColumnsOnly says the engine keeps only the column hashes of this
	// system's rows (a target's, or a source's without payload: full):
	// decoding then builds no normalized row. Needs Hasher.
	ColumnsOnly bool
}

// Handler folds polled batches; it is reconcile.Engine in production. What
// Apply folds becomes durable later: soon after Checkpoint, all of it by the
// time Flush returns.
type Handler interface {
	Apply(ctx context.Context, items []reconcile.Item) error
	Checkpoint(ctx context.Context) error
	Flush(ctx context.Context) error
}

// Options configure a Consumer.
type Options struct {
	Brokers  []string
	Group    string
	ClientID string
	Routes   []Route
	DLQTopic string
	// MaxRecordBytes sends larger records to the DLQ undecoded (default 1 MiB).
	MaxRecordBytes int
	// MaxPoll bounds the records of one batch (default 10000).
	MaxPoll int
	// ListInterval is how often end offsets are listed for the watermark rule
	// (default 500ms).
	ListInterval time.Duration
	// RetryMin and RetryMax bound the backoff between decode attempts of a
	// record whose writer schema is unavailable (default 200ms and 30s).
	RetryMin, RetryMax time.Duration
	// Stored returns the durable positions from the state store: where to
	// resume. It is asked at every assignment, since a partition may come
	// back after a rebalance.
	Stored func() (map[string]map[int32]int64, error)
	// Gate, if set, pauses consumption while the outbox is full: fetching
	// stops (group membership stays) until the gate opens again. Default:
	// none.
	Gate Gate
	// Extra client options: TLS, SASL, test hooks.
	Extra   []kgo.Opt
	Logger  *slog.Logger
	Metrics *Metrics // may be nil
}

// Gate is the outbox's backpressure (state.OutboxGate).
type Gate interface {
	// Open reports whether consumption may go on.
	Open() bool
	// Wait blocks until the gate is open or ctx is done.
	Wait(ctx context.Context) error
	// Closing returns a channel closed once the gate is closed.
	Closing() <-chan struct{}
}

// Metrics are the consumer's Prometheus metrics.
type Metrics struct {
	decodeErrors  *prometheus.CounterVec
	decodeRetries *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	paused        prometheus.Gauge
}

// NewMetrics registers the consumer's metrics, including per-partition lag and
// watermark age from progress.
func NewMetrics(reg prometheus.Registerer, progress *Progress) *Metrics {
	m := &Metrics{
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_decode_errors_total",
			Help: "Records that could not be decoded, by dataset, system and reason.",
		}, []string{"dataset", "system", "reason"}),
		decodeRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_decode_retries_total",
			Help: "Decode attempts that failed because a record's writer schema was unavailable (schema registry down); the partition waits and retries instead of using the DLQ. By dataset and system.",
		}, []string{"dataset", "system"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_records_skipped_total",
			Help: "Records that are not changes (tombstones, truncates, messages), by dataset, system and kind.",
		}, []string{"dataset", "system", "kind"}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recon_consumer_paused",
			Help: "1 while consumption is paused because the outbox holds outbox.max_bytes or more, 0 otherwise.",
		}),
	}
	reg.MustRegister(m.decodeErrors, m.decodeRetries, m.skipped, m.paused, progress)
	return m
}

// Consumer reads every input topic in one consumer group and hands decoded
// batches to its Handler. One goroutine, Run, owns the poll loop.
type Consumer struct {
	client   *kgo.Client
	adm      *kadm.Client
	routes   map[string]*Route
	handler  Handler
	progress *Progress
	opts     Options
	log      *slog.Logger
	joined   atomic.Bool

	// mu guards owned and inflight: which partitions this member owns, and
	// how many polled batches the apply stage has not finished.
	mu       sync.Mutex
	drained  *sync.Cond
	owned    map[string]map[int32]bool
	inflight int
}

// New builds the consumer's client; nothing is read until Run.
func New(h Handler, progress *Progress, opts Options) (*Consumer, error) {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	if opts.MaxPoll <= 0 {
		opts.MaxPoll = 10000
	}
	if opts.ListInterval <= 0 {
		opts.ListInterval = 500 * time.Millisecond
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = defaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(defaultRetryMax, opts.RetryMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Consumer{routes: make(map[string]*Route), handler: h, progress: progress, opts: opts, log: opts.Logger,
		owned: make(map[string]map[int32]bool)}
	c.drained = sync.NewCond(&c.mu)
	topics := make([]string, 0, len(opts.Routes))
	for i := range opts.Routes {
		r := &opts.Routes[i]
		c.routes[r.Topic] = r
		topics = append(topics, r.Topic)
		if m := opts.Metrics; m != nil {
			// Zero series for alerts: a rate over nothing is no rate at all.
			for _, reason := range Reasons() {
				m.decodeErrors.WithLabelValues(r.Dataset, r.System, reason)
			}
			m.decodeRetries.WithLabelValues(r.Dataset, r.System)
			for _, kind := range []string{"tombstone", SkipTruncate, SkipMessage} {
				m.skipped.WithLabelValues(r.Dataset, r.System, kind)
			}
		}
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ClientID(opts.ClientID),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Partition p of every topic of a dataset goes to the same member
		// (co-partitioning, DESIGN §7).
		kgo.Balancers(kgo.RangeBalancer()),
		// Kafka commits trail the state store's offsets; they serve lag monitoring.
		kgo.AutoCommitMarks(),
		kgo.AdjustFetchOffsetsFn(c.resumeFromState),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	kopts = append(kopts, opts.Extra...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("building the consumer client: %w", err)
	}
	c.client = cl
	c.adm = kadm.NewClient(cl)
	return c, nil
}

// Joined reports whether the consumer has joined its group.
func (c *Consumer) Joined() bool { return c.joined.Load() }

// Client exposes the underlying client for pings and tests.
func (c *Consumer) Client() *kgo.Client { return c.client }

// resumeFromState replaces the group's committed offsets with the ones stored
// with the state: those are the truth, since Kafka commits trail them. A
// partition the state has never read starts from the beginning, whatever the
// group committed: a new state dir must see every change to judge keys.
func (c *Consumer) resumeFromState(_ context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	stored, err := c.stored()
	if err != nil {
		return nil, err
	}
	for topic, parts := range offs {
		for p := range parts {
			if next, ok := stored[topic][p]; ok {
				parts[p] = kgo.NewOffset().At(next).WithEpoch(-1)
			} else {
				parts[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	return offs, nil
}

func (c *Consumer) stored() (map[string]map[int32]int64, error) {
	if c.opts.Stored == nil {
		return nil, nil
	}
	stored, err := c.opts.Stored()
	if err != nil {
		return nil, fmt.Errorf("reading stored offsets: %w", err)
	}
	return stored, nil
}

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, added map[string][]int32) {
	stored, err := c.stored()
	if err != nil {
		c.log.Error("reading stored offsets for watermarks", "err", err)
	}
	for topic, parts := range added {
		for _, p := range parts {
			c.progress.assign(topic, p, stored[topic][p])
		}
	}
	c.own(added)
	c.joined.Store(true)
	c.log.Info("partitions assigned", "partitions", added)
}

func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	// Batches already polled for these partitions are folded in and made
	// durable before they are handed over, and their offsets committed: the
	// next owner starts exactly where this one stopped.
	c.disown(ctx, revoked)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("committing offsets on revoke failed; the state store keeps the truth", "err", err)
	}
}

func (c *Consumer) lost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.disown(ctx, lost)
}

// MarkDurable lets Kafka commits advance to offsets the state store holds.
func (c *Consumer) MarkDurable(offsets map[string]map[int32]int64) {
	marks := make(map[string]map[int32]kgo.EpochOffset, len(offsets))
	for topic, parts := range offsets {
		m := make(map[int32]kgo.EpochOffset, len(parts))
		for p, next := range parts {
			m[p] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
		marks[topic] = m
	}
	c.client.MarkCommitOffsets(marks)
}

func (c *Consumer) listLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.ListInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.progress.listEnds(ctx, c.adm); err != nil && ctx.Err() == nil {
			c.log.Debug("listing end offsets failed", "err", err)
		}
	}
}

// decode decodes one record into its item: an event, a skip or a reject for
// the DLQ. Its error is an *UnavailableError, which rejects nothing: the
// record is to be decoded again (see decodeWaiting).
func (c *Consumer) decode(ctx context.Context, r *kgo.Record) (reconcile.Item, error) {
	it := reconcile.Item{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	route := c.routes[r.Topic]
	if route == nil {
		return it, nil // not ours; only its offset moves
	}
	ev, skip, err := c.decodeChange(ctx, route, r)
	var unavailable *UnavailableError
	switch {
	case errors.As(err, &unavailable):
		return it, err
	case err != nil:
		it.Reject = c.reject(route, r, err)
	case skip != "":
		if c.opts.Metrics != nil {
			c.opts.Metrics.skipped.WithLabelValues(route.Dataset, route.System, skip).Inc()
		}
	default:
		it.Event = ev
	}
	return it, nil
}

func (c *Consumer) decodeChange(ctx context.Context, route *Route, r *kgo.Record) (*compare.ChangeEvent, string, error) {
	if len(r.Key)+len(r.Value) > c.opts.MaxRecordBytes {
		return nil, "", &DecodeError{Reason: ReasonOversized, Err: fmt.Errorf("record of %d bytes exceeds max_record_bytes %d", len(r.Key)+len(r.Value), c.opts.MaxRecordBytes)}
	}
	meta := Meta{Offset: r.Offset, Timestamp: r.Timestamp}
	var d Decoded
	var err error
	if cd, ok := route.Decoder.(ContextDecoder); ok {
		d, err = cd.DecodeContext(ctx, r.Key, r.Value, meta)
	} else {
		d, err = route.Decoder.Decode(r.Key, r.Value, meta)
	}
	if err != nil {
		return nil, "", err
	}
	if d.Tombstone {
		return nil, "tombstone", nil
	}
	if d.Skip != "" {
		return nil, d.Skip, nil
	}
	src := d.Key
	if src == nil {
		src = d.Row
	}
	key, err := route.Rules.Key(src)
	if err != nil {
		return nil, "", &DecodeError{Reason: ReasonMissingKey, Err: err}
	}
	ev := &compare.ChangeEvent{
		Dataset: route.Dataset, System: route.System, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key: key, Op: d.Op, Version: d.Version, Lineage: d.Lineage, EventTime: d.EventTime,
	}
	if d.Op == compare.OpUpsert {
		if err := normalize(route, d.Row, ev); err != nil {
			return nil, "", &DecodeError{Reason: ReasonBadValue, Err: err}
		}
	}
	return ev, "", nil
}

// normalize fills in ev's row, column hashes and digest from a decoded row:
// the hashes and the digest are computed here, in parallel, when they can be.
func normalize(route *Route, raw map[string]any, ev *compare.ChangeEvent) error {
	if route.ColumnsOnly && route.Hasher != nil {
		cols, unchanged, err := route.Rules.NormalizeColumns(raw)
		if err != nil {
			return err
		}
		ev.Cols, ev.Unchanged = cols, unchanged
		rules := route.Rules
		ev.LazyRow = func() (compare.Row, error) {
			row, _, err := rules.Normalize(raw)
			return row, err
		}
	} else {
		row, unchanged, err := route.Rules.Normalize(raw)
		if err != nil {
			return err
		}
		ev.Row, ev.Unchanged = row, unchanged
		if route.Hasher != nil {
			ev.Cols = route.Hasher.Columns(row)
		}
	}
	if route.Hasher != nil && len(ev.Unchanged) == 0 {
		ev.Digest = route.Hasher.Digest(ev.Cols)
	}
	return nil
}

// reject renders a record for the dead-letter queue: the original key, value
// and headers, plus why and where it came from.
func (c *Consumer) reject(route *Route, r *kgo.Record, err error) *reconcile.Reject {
	reason := ReasonMalformed
	var de *DecodeError
	if errors.As(err, &de) {
		reason = de.Reason
	}
	if c.opts.Metrics != nil {
		c.opts.Metrics.decodeErrors.WithLabelValues(route.Dataset, route.System, reason).Inc()
	}
	c.log.Debug("record sent to the DLQ", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
	hs := make([]state.Header, 0, len(r.Headers)+5)
	for _, h := range r.Headers {
		hs = append(hs, state.Header{Key: h.Key, Value: h.Value})
	}
	hs = append(hs,
		state.Header{Key: "recon-error", Value: []byte(err.Error())},
		state.Header{Key: "recon-source-topic", Value: []byte(r.Topic)},
		state.Header{Key: "recon-source-partition", Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		state.Header{Key: "recon-source-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		state.Header{Key: "recon-dataset", Value: []byte(route.Dataset)},
	)
	return &reconcile.Reject{
		Dataset: route.Dataset, System: route.System, Reason: reason,
		Record: state.OutboxRecord{Topic: c.opts.DLQTopic, Key: r.Key, Value: r.Value, Headers: hs},
	}
}

// Close leaves the group and closes the client.
func (c *Consumer) Close() { c.client.Close() }

func itoa(p int32) string { return strconv.FormatInt(int64(p), 10) }
