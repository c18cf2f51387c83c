package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

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
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("output breaker changed state", "from", from.String(), "to", to.String())
			if m != nil {
				m.breaker.Set(float64(to))
			}
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

// BreakerState is the breaker's state for readiness reports.
func (p *Publisher) BreakerState() gobreaker.State { return p.cb.State() }

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
			if !errors.Is(err, gobreaker.ErrOpenState) {
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

// drainOnce publishes one chunk and returns how many records left the outbox.
func (p *Publisher) drainOnce(ctx context.Context) (int, error) {
	recs, err := p.store.Outbox(p.opts.Chunk)
	if err != nil {
		return 0, fmt.Errorf("reading the outbox: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	_, err = p.cb.Execute(func() (struct{}, error) {
		krs := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			kr := &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
			for _, h := range r.Headers {
				kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			krs[i] = kr
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return struct{}{}, p.client.ProduceSync(pctx, krs...).FirstErr()
	})
	if err != nil {
		if p.metrics != nil && !errors.Is(err, gobreaker.ErrOpenState) {
			p.metrics.failures.Inc()
		}
		return 0, fmt.Errorf("producing %d outbox records: %w", len(recs), err)
	}
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = r.Seq
		if p.metrics != nil {
			p.metrics.published.WithLabelValues(r.Topic).Inc()
		}
	}
	if err := p.store.DeleteOutbox(seqs...); err != nil {
		return 0, fmt.Errorf("deleting %d published outbox records: %w", len(seqs), err)
	}
	return len(recs), nil
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
