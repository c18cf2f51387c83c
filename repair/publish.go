package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/internal/crashpoint"
	"github.com/recon-dev/recon/state"
)

// PublisherOptions tune the outbox publisher. Zero values take the defaults.
type PublisherOptions struct {
	// Chunk is how many outbox records one produce call carries (default 500).
	Chunk int
	// BreakerTimeout is how long the breaker stays open before it lets one
	// attempt through (default 5s).
	BreakerTimeout time.Duration
	// MaxBackoff caps the wait between failed attempts (default 5s).
	MaxBackoff time.Duration
	// Poll is how often the outbox is checked without a Notify (default 1s).
	Poll time.Duration
	// ProduceTimeout bounds one produce attempt (default 10s). The idempotent
	// producer retries retriable errors without limit, so this is what turns a
	// sick broker into a failure the breaker can count.
	ProduceTimeout time.Duration
	// Encoder re-encodes each value as it leaves the outbox (default nil:
	// values go out as the outbox holds them, in JSON).
	Encoder Encoder
}

// Encoder turns the value of an outbox record into the bytes published to
// topic. The outbox keeps the JSON form whatever the output format: it is the
// canonical, auditable one, and a change of format applies to records
// already waiting. An encoder returns values of topics it does not know as
// they are (the DLQ keeps the original record's bytes).
type Encoder interface {
	EncodeValue(topic string, value []byte) ([]byte, error)
}

func (o *PublisherOptions) defaults() {
	if o.Chunk <= 0 {
		o.Chunk = 500
	}
	if o.BreakerTimeout <= 0 {
		o.BreakerTimeout = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.ProduceTimeout <= 0 {
		o.ProduceTimeout = 10 * time.Second
	}
}

// Publisher drains the outbox to Kafka. Records leave the outbox only after
// the broker acknowledged them (acks=all, idempotent producer), so a Kafka
// outage delays events but never loses them; a crash between produce and
// delete publishes a record twice, which its deterministic id makes harmless.
type Publisher struct {
	store   *state.Store
	client  *kgo.Client
	cb      *gobreaker.CircuitBreaker[struct{}]
	opts    PublisherOptions
	wake    chan struct{}
	log     *slog.Logger
	metrics *PublisherMetrics
	// pending is a chunk still in the producer's hands; only the publisher's
	// goroutine touches it.
	pending *attempt

	// health is what readiness reports of the breaker. Its mutex is never
	// held while calling into the breaker, whose state-change callback
	// takes it.
	health struct {
		sync.Mutex
		since   time.Time // when the breaker last closed, or last left closed; zero: closed since start
		lastErr error     // the last failed attempt, nil once the breaker closes
	}
}

// BreakerStatus is the output breaker as readiness reports it.
type BreakerStatus struct {
	State gobreaker.State
	// Since is, for a closed breaker, when it closed (zero: closed since
	// the publisher started); otherwise when it last left the closed
	// state, however often it went from open to half-open and back since.
	Since time.Time
	// LastErr is the last failed publish attempt since the breaker was
	// last closed, or nil.
	LastErr error
}

// PublisherMetrics are the publisher's Prometheus metrics.
type PublisherMetrics struct {
	breaker   prometheus.Gauge
	published *prometheus.CounterVec
	failures  prometheus.Counter
	depth     prometheus.GaugeFunc
	bytes     prometheus.GaugeFunc
}

// NewPublisherMetrics registers the publisher's metrics. store feeds the outbox gauges.
func NewPublisherMetrics(reg prometheus.Registerer, store *state.Store) *PublisherMetrics {
	m := &PublisherMetrics{
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recon_breaker_state",
			Help: "State of the output circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_published_records_total",
			Help: "Records published from the outbox, by topic.",
		}, []string{"topic"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recon_publish_failures_total",
			Help: "Failed attempts to publish a chunk of the outbox.",
		}),
		depth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "recon_outbox_records",
			Help: "Records waiting in the outbox.",
		}, func() float64 { n, _ := store.OutboxDepth(); return float64(n) }),
		bytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "recon_outbox_bytes",
			Help: "Bytes waiting in the outbox.",
		}, func() float64 { _, b := store.OutboxDepth(); return float64(b) }),
	}
	reg.MustRegister(m.breaker, m.published, m.failures, m.depth, m.bytes)
	return m
}

// NewPublisher returns a publisher producing with client, which must be built
// with acks=all and idempotence (the kgo defaults).
func NewPublisher(store *state.Store, client *kgo.Client, m *PublisherMetrics, log *slog.Logger, opts PublisherOptions) *Publisher {
	opts.defaults()
	p := &Publisher{store: store, client: client, opts: opts, wake: make(chan struct{}, 1), log: log, metrics: m}
	p.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "outputs",
		MaxRequests: 1,
		Timeout:     opts.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		// recon's own stop cancels a produce mid-chunk: that says nothing
		// about the brokers, and counted as a failure it could open the
		// breaker for the whole of a short shutdown flush.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("output breaker changed state", "from", from.String(), "to", to.String())
			if m != nil {
				m.breaker.Set(float64(to))
			}
			p.health.Lock()
			// Open and half-open alternate while the brokers stay sick:
			// what an operator needs is how long since it last worked.
			if from == gobreaker.StateClosed || to == gobreaker.StateClosed {
				p.health.since = time.Now()
			}
			if to == gobreaker.StateClosed {
				p.health.lastErr = nil
			}
			p.health.Unlock()
		},
	})
	return p
}

// Notify wakes the publisher: the outbox has new records. It never blocks.
func (p *Publisher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Breaker reports the breaker's state, since when, and the last failure
// that counted against it.
func (p *Publisher) Breaker() BreakerStatus {
	st := p.cb.State() // first: an open breaker whose timeout passed turns half-open here
	p.health.Lock()
	defer p.health.Unlock()
	return BreakerStatus{State: st, Since: p.health.since, LastErr: p.health.lastErr}
}

// failed remembers err as the last failed attempt, for readiness.
func (p *Publisher) failed(err error) {
	p.health.Lock()
	p.health.lastErr = err
	p.health.Unlock()
}

// Run drains the outbox until ctx is done.
func (p *Publisher) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	tick := time.NewTicker(p.opts.Poll)
	defer tick.Stop()
	for {
		n, err := p.drainOnce(ctx)
		switch {
		case err != nil:
			backoff = nextBackoff(backoff, p.opts.MaxBackoff)
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, errInFlight) {
				p.log.Debug("outbox waits for the broker", "err", err, "backoff", backoff)
			} else {
				p.log.Warn("publishing the outbox failed; retrying", "err", err, "backoff", backoff)
			}
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		case n > 0:
			backoff = 0
			continue // more may be waiting
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// Flush drains the outbox until it is empty or ctx is done: the bounded flush
// of a graceful shutdown.
func (p *Publisher) Flush(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		if p.pending != nil {
			// A chunk Run left in flight: wait for its answer. Draining
			// meanwhile would only count errInFlight against the breaker
			// until it opened, and an open breaker outlasts a short flush.
			select {
			case <-p.pending.done:
			case <-ctx.Done():
				left, _ := p.store.OutboxDepth()
				return fmt.Errorf("outbox not drained, %d records left: %w", left, errInFlight)
			}
		}
		n, err := p.drainOnce(ctx)
		if err != nil {
			backoff = nextBackoff(backoff, p.opts.MaxBackoff)
			if !sleepCtx(ctx, backoff) {
				left, _ := p.store.OutboxDepth()
				return fmt.Errorf("outbox not drained, %d records left: %w", left, err)
			}
			continue
		}
		if n == 0 {
			return nil
		}
	}
}

// attempt is one chunk handed to the producer. The idempotent producer keeps
// retrying a chunk a sick broker refuses and cannot give it up safely, so an
// attempt may outlive the wait for it; it still deletes its records from the
// outbox if it succeeds late.
type attempt struct {
	done chan struct{}
	err  error
}

// errInFlight fails a drain while an earlier chunk is still being retried: the
// broker is still sick, and a second copy of the chunk would only queue up.
var errInFlight = errors.New("an earlier chunk is still waiting for the broker")

// drainOnce publishes one chunk and returns how many records left the outbox.
func (p *Publisher) drainOnce(ctx context.Context) (int, error) {
	if p.pending != nil {
		select {
		case <-p.pending.done:
			// Let the breaker learn how the late chunk ended.
			att := p.pending
			p.pending = nil
			if att.err != nil && !errors.Is(att.err, context.Canceled) {
				p.failed(fmt.Errorf("a chunk acknowledged late failed: %w", att.err))
			}
			if _, err := p.cb.Execute(func() (struct{}, error) { return struct{}{}, att.err }); err != nil {
				return 0, err
			}
		default:
			_, err := p.cb.Execute(func() (struct{}, error) { return struct{}{}, errInFlight })
			return 0, err
		}
	}
	recs, err := p.store.Outbox(p.opts.Chunk)
	if err != nil {
		return 0, fmt.Errorf("reading the outbox: %w", err)
	}
	if len(recs) == 0 {
		return 0, p.probe(ctx)
	}
	// Encoding comes before the breaker: a value that cannot be encoded says
	// nothing about the brokers. It stays in the outbox, failing every drain
	// loudly, rather than be dropped: that is a bug to fix, not an event to lose.
	krs, err := p.records(recs)
	if err != nil {
		if p.metrics != nil {
			p.metrics.failures.Inc()
		}
		return 0, err
	}
	_, err = p.cb.Execute(func() (struct{}, error) {
		att := p.produce(ctx, recs, krs)
		t := time.NewTimer(p.opts.ProduceTimeout)
		defer t.Stop()
		select {
		case <-att.done:
			return struct{}{}, att.err
		case <-t.C:
			p.pending = att
			return struct{}{}, fmt.Errorf("no acknowledgement within %v", p.opts.ProduceTimeout)
		case <-ctx.Done():
			p.pending = att
			return struct{}{}, ctx.Err()
		}
	})
	if err != nil {
		err = fmt.Errorf("producing %d outbox records: %w", len(recs), err)
		// Neither a breaker that refused the attempt nor recon's own stop
		// is a failed publish.
		if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) && !errors.Is(err, context.Canceled) {
			if p.metrics != nil {
				p.metrics.failures.Inc()
			}
			p.failed(err)
		}
		return 0, err
	}
	return len(recs), nil
}

// probe lets a breaker that is not closed learn whether the brokers are back
// when there is nothing to publish: an idle recon must not report an open
// breaker forever.
func (p *Publisher) probe(ctx context.Context) error {
	if p.cb.State() == gobreaker.StateClosed {
		return nil
	}
	_, err := p.cb.Execute(func() (struct{}, error) {
		pctx, cancel := context.WithTimeout(ctx, p.opts.ProduceTimeout)
		defer cancel()
		if err := p.client.Ping(pctx); err != nil {
			err = fmt.Errorf("probing the brokers: %w", err)
			p.failed(err)
			return struct{}{}, err
		}
		return struct{}{}, nil
	})
	return err
}

// records turns outbox records into Kafka records, values encoded.
func (p *Publisher) records(recs []state.OutboxRecord) ([]*kgo.Record, error) {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		value := r.Value
		if p.opts.Encoder != nil {
			var err error
			if value, err = p.opts.Encoder.EncodeValue(r.Topic, r.Value); err != nil {
				return nil, fmt.Errorf("encoding outbox record %d for %s: %w", r.Seq, r.Topic, err)
			}
		}
		kr := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		krs[i] = kr
	}
	return krs, nil
}

// produce hands krs, made from recs, to the producer; the attempt completes
// when every record is acknowledged (and deleted from the outbox) or one failed.
func (p *Publisher) produce(ctx context.Context, recs []state.OutboxRecord, krs []*kgo.Record) *attempt {
	att := &attempt{done: make(chan struct{})}
	seqs := make([]uint64, len(recs))
	var (
		mu       sync.Mutex
		left     = len(recs)
		firstErr error
	)
	finish := func(err error) {
		mu.Lock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		left--
		last := left == 0
		mu.Unlock()
		if !last {
			return
		}
		if firstErr == nil {
			// Fault injection (crash tests only): acknowledged by Kafka,
			// still in the outbox, so published again after a restart.
			crashpoint.Hit(crashpoint.OutboxDrain)
			if err := p.store.DeleteOutbox(seqs...); err != nil {
				firstErr = fmt.Errorf("deleting %d published outbox records: %w", len(seqs), err)
			} else if p.metrics != nil {
				for _, r := range recs {
					p.metrics.published.WithLabelValues(r.Topic).Inc()
				}
			}
		}
		att.err = firstErr
		close(att.done)
	}
	for i, r := range recs {
		seqs[i] = r.Seq
	}
	for _, kr := range krs {
		p.client.Produce(ctx, kr, func(_ *kgo.Record, err error) { finish(err) })
	}
	return att
}

func nextBackoff(cur, max time.Duration) time.Duration {
	if cur == 0 {
		return 100 * time.Millisecond
	}
	cur *= 2
	if cur > max {
		cur = max
	}
	return cur
}

// sleepCtx waits d or until ctx is done; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
