package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/internal/crashpoint"
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
	// DLQMaxBytes bounds the key, value and headers of one DLQ record
	// (default DefaultDLQMaxBytes): a larger one is cut to fit (see fitDLQ),
	// since a record the DLQ topic refuses would stop the outbox behind it.
	DLQMaxBytes int
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

	// fetchMu guards fetchErrs: the partitions whose fetches fail, for
	// readiness. Kept apart from mu, which a revoke holds while it waits.
	fetchMu   sync.Mutex
	fetchErrs map[topicPartition]*FetchError
	groupErr  *FetchError // the client's own errors (joining the group), no partition's
}

type topicPartition struct {
	topic     string
	partition int32
}

// FetchError is a partition whose fetches have been failing since Since.
// The client keeps retrying it; Last is the latest failure.
type FetchError struct {
	Topic     string
	Partition int32
	Since     time.Time
	Last      time.Time
	Err       error
}

// New builds the consumer's client; nothing is read until Run.
func New(h Handler, progress *Progress, opts Options) (*Consumer, error) {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = 1 << 20
	}
	if opts.MaxPoll <= 0 {
		opts.MaxPoll = 10000
	}
	if opts.DLQMaxBytes <= 0 {
		opts.DLQMaxBytes = DefaultDLQMaxBytes
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
		owned: make(map[string]map[int32]bool), fetchErrs: make(map[topicPartition]*FetchError)}
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

// Joined reports whether the consumer is a member of its group: it has
// been assigned partitions and has not lost them since.
func (c *Consumer) Joined() bool { return c.joined.Load() }

// Owned is how many partitions this member owns.
func (c *Consumer) Owned() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, parts := range c.owned {
		n += len(parts)
	}
	return n
}

// FetchErrors returns the partitions whose fetches failed within the last
// fresh, sorted. A partition leaves the list when it delivers records again,
// or once its errors stop for fresh: an idle partition has no other way to
// show that it recovered.
func (c *Consumer) FetchErrors(fresh time.Duration) []FetchError {
	cutoff := c.progress.now().Add(-fresh)
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	var out []FetchError
	for tp, fe := range c.fetchErrs {
		if fe.Last.Before(cutoff) {
			delete(c.fetchErrs, tp)
			continue
		}
		out = append(out, *fe)
	}
	slices.SortFunc(out, func(a, b FetchError) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// GroupError returns the error the client has been failing with since
// Since while managing its group membership (joining, syncing), if it
// failed within the last fresh. It clears once partitions are assigned or
// records arrive.
func (c *Consumer) GroupError(fresh time.Duration) (FetchError, bool) {
	cutoff := c.progress.now().Add(-fresh)
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	if c.groupErr == nil || c.groupErr.Last.Before(cutoff) {
		c.groupErr = nil
		return FetchError{}, false
	}
	return *c.groupErr, true
}

func (c *Consumer) clearGroupError() {
	c.fetchMu.Lock()
	c.groupErr = nil
	c.fetchMu.Unlock()
}

// noteFetches records the partitions a poll says failed, and forgets those
// that delivered records.
func (c *Consumer) noteFetches(fs kgo.Fetches) {
	now := c.progress.now()
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		tp := topicPartition{p.Topic, p.Partition}
		switch {
		case p.Err != nil && errors.Is(p.Err, context.Canceled):
		case p.Err != nil && p.Topic == "":
			// Not a partition's: the client reports its group
			// management errors this way.
			if c.groupErr == nil {
				c.groupErr = &FetchError{Partition: -1, Since: now}
			}
			c.groupErr.Last, c.groupErr.Err = now, p.Err
		case p.Err != nil:
			fe := c.fetchErrs[tp]
			if fe == nil {
				fe = &FetchError{Topic: p.Topic, Partition: p.Partition, Since: now}
				c.fetchErrs[tp] = fe
			}
			fe.Last, fe.Err = now, p.Err
		case len(p.Records) > 0:
			delete(c.fetchErrs, tp)
			c.groupErr = nil
		}
	})
}

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

func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, added map[string][]int32) {
	crashpoint.Hit(crashpoint.Rebalance) // fault injection (crash tests only)
	stored, err := c.stored()
	if err != nil {
		c.log.Error("reading stored offsets for watermarks", "err", err)
	}
	commit := make(map[string]map[int32]kgo.EpochOffset)
	for topic, parts := range added {
		for _, p := range parts {
			c.progress.assign(topic, p, stored[topic][p])
			if next := stored[topic][p]; next > 0 {
				if commit[topic] == nil {
					commit[topic] = make(map[int32]kgo.EpochOffset)
				}
				commit[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: next}
			}
		}
	}
	// Kafka's committed offsets trail the stored ones after a crash (they
	// follow checkpoints in the background) or under a new group name, and
	// would stay behind until new input arrives: lag monitors would report
	// lag recon does not have. The stored offsets are the truth; commit them.
	if len(commit) > 0 {
		cl.CommitOffsets(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				c.log.Debug("committing the stored offsets of assigned partitions failed; the next commit carries them", "err", err)
			}
		})
	}
	c.own(added)
	c.clearGroupError()
	c.joined.Store(true)
	c.log.Info("partitions assigned", "partitions", added)
}

func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	crashpoint.Hit(crashpoint.Rebalance) // fault injection (crash tests only)
	// Batches already polled for these partitions are folded in and made
	// durable before they are handed over, and their offsets committed: the
	// next owner starts exactly where this one stopped.
	c.disown(ctx, revoked)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn("committing offsets on revoke failed; the state store keeps the truth", "err", err)
	}
}

func (c *Consumer) lost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	// The group has moved on without this member (its session expired, or
	// a fatal group error): it is no member until it is assigned again.
	c.joined.Store(false)
	c.log.Warn("partitions lost; rejoining the group", "partitions", lost)
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
	orig := make([]state.Header, 0, len(r.Headers))
	for _, h := range r.Headers {
		orig = append(orig, state.Header{Key: h.Key, Value: h.Value})
	}
	own := []state.Header{
		{Key: "recon-error", Value: []byte(err.Error())},
		{Key: "recon-source-topic", Value: []byte(r.Topic)},
		{Key: "recon-source-partition", Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		{Key: "recon-source-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		{Key: "recon-dataset", Value: []byte(route.Dataset)},
	}
	limit := c.opts.DLQMaxBytes
	if limit <= 0 { // a Consumer not built by New
		limit = DefaultDLQMaxBytes
	}
	key, value, hs, cut := fitDLQ(r.Key, r.Value, orig, own, limit)
	if cut {
		c.log.Debug("record cut to fit the DLQ", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"bytes", len(r.Key)+len(r.Value), "dlq_max_bytes", limit)
	}
	return &reconcile.Reject{
		Dataset: route.Dataset, System: route.System, Reason: reason,
		Record: state.OutboxRecord{Topic: c.opts.DLQTopic, Key: key, Value: value, Headers: hs},
	}
}

// DefaultDLQMaxBytes is DLQMaxBytes when Options leave it unset: 900 KiB,
// under both Kafka's default max.message.bytes (1 MiB + 12 bytes) and the
// producer's default batch size (1,000,012 bytes), with room for the batch
// and record overhead.
const DefaultDLQMaxBytes = 900 << 10

// fitDLQ returns the DLQ copy of a record: key, value and headers (the
// record's own, then recon's) as they are when they fit in limit bytes.
// Otherwise, the value is cut first, then the key, and the record's own
// headers are dropped when they would take more than half the room; headers
// recon-truncated: true and recon-original-size (key plus value bytes, what
// max_record_bytes measures) say so. recon's headers, which say where the
// record came from, are always kept: whoever needs the whole record reads it
// at its source offset, which is why a copy cut to fit is worth more than a
// copy that the topic refuses, stopping the outbox behind it.
func fitDLQ(key, value []byte, orig, own []state.Header, limit int) (k, v []byte, hs []state.Header, cut bool) {
	size := func(hs []state.Header) int {
		n := 0
		for _, h := range hs {
			n += len(h.Key) + len(h.Value)
		}
		return n
	}
	if len(key)+len(value)+size(orig)+size(own) <= limit {
		return key, value, append(orig, own...), false
	}
	own = append(own,
		state.Header{Key: "recon-truncated", Value: []byte("true")},
		state.Header{Key: "recon-original-size", Value: []byte(strconv.Itoa(len(key) + len(value)))})
	room := max(0, limit-size(own))
	if size(orig) > room/2 {
		orig = nil
	}
	room -= size(orig)
	v = value[:min(len(value), max(0, room-len(key)))]
	room -= len(v)
	k = key[:min(len(key), max(0, room))]
	return k, v, append(orig, own...), true
}

// Close leaves the group and closes the client.
func (c *Consumer) Close() { c.client.Close() }

func itoa(p int32) string { return strconv.FormatInt(int64(p), 10) }
