package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/pipeline"
)

// maxPoll is what recon's consumer asks of each poll (consumer.Options.MaxPoll).
const maxPoll = 5000

// firstFetch remembers when the client read its first batch of records: both
// passes are timed from there, after the group join.
type firstFetch struct{ at atomic.Int64 }

var _ kgo.HookFetchBatchRead = (*firstFetch)(nil)

func (f *firstFetch) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	if m.NumRecords > 0 && f.at.Load() == 0 {
		f.at.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (f *firstFetch) since(end time.Time) time.Duration {
	at := f.at.Load()
	if at == 0 {
		return 0
	}
	return end.Sub(time.Unix(0, at))
}

// rawPass reads every record with a bare consumer in a group of its own,
// configured as recon's consumer is, and does nothing with them.
func rawPass(ctx context.Context, addr string, w *workload, group string, stall time.Duration) (Pass, error) {
	var first firstFetch
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID("recon-bench-raw"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(SourceTopic, TargetTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.WithHooks(&first),
	)
	if err != nil {
		return Pass{}, fmt.Errorf("building the consumer: %w", err)
	}
	defer cl.Close()
	n := 0
	for n < w.records() {
		pctx, cancel := context.WithTimeout(ctx, stall)
		fs := cl.PollRecords(pctx, maxPoll)
		cancel()
		if err := ctx.Err(); err != nil {
			return Pass{}, err
		}
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = fmt.Errorf("fetching %s/%d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return Pass{}, ferr
		}
		got := fs.NumRecords()
		if got == 0 && pctx.Err() != nil {
			return Pass{}, fmt.Errorf("%w for %s after %d of %d records", ErrStalled, stall, n, w.records())
		}
		n += got
	}
	return Pass{Records: n, Elapsed: first.since(time.Now())}, nil
}

// fullPass runs recon's pipeline on the workload in a fresh state dir until
// the offsets stored with its state cover every record, then stops it.
// group must be new to the broker: recon resumes from a known group's
// commits for partitions its (fresh) store has no offsets of.
func fullPass(ctx context.Context, addr string, w *workload, group string, opts Options) (_ Pass, _ Counts, err error) {
	dir, err := os.MkdirTemp(opts.Dir, "recon-bench-state-")
	if err != nil {
		return Pass{}, Counts{}, fmt.Errorf("making the state dir: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the state dir: %w", rerr))
		}
	}()
	cfg, err := benchConfig(addr, dir, group)
	if err != nil {
		return Pass{}, Counts{}, err
	}
	reg := prometheus.NewRegistry()
	var first firstFetch
	p, err := pipeline.New(ctx, cfg, pipeline.Options{
		Logger:     opts.Logger,
		Registry:   reg,
		ExtraKafka: []kgo.Opt{kgo.WithHooks(&first)},
	})
	if err != nil {
		return Pass{}, Counts{}, fmt.Errorf("starting recon: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	// The pipeline is stopped on every return; a failure to stop cleanly
	// matters only when the measurement itself succeeded.
	stopped := false
	defer func() {
		if !stopped {
			stop()
			if rerr := <-done; rerr != nil && err == nil {
				err = fmt.Errorf("stopping recon: %w", rerr)
			}
		}
	}()

	pass, err := waitDurable(ctx, p, w, done, opts.StallTimeout, &first)
	if err != nil {
		if errors.Is(err, errPipelineStopped) {
			stopped = true
		}
		return Pass{}, Counts{}, err
	}
	// Read the counts before stopping: the state gauges read the open store.
	counts, err := settledCounts(ctx, p, reg, w.records())
	if err != nil {
		return pass, Counts{}, err
	}
	stopped = true
	stop()
	if err := <-done; err != nil {
		return pass, counts, fmt.Errorf("stopping recon: %w", err)
	}
	return pass, counts, nil
}

var errPipelineStopped = errors.New("recon stopped before reading every record")

// waitDurable polls the offsets in the state store on a short ticker until
// they reach the end of every partition. Those offsets are written in the
// same synced batch as the state they cover, so reaching them means every
// record is decoded, folded in and durable.
func waitDurable(ctx context.Context, p *pipeline.Pipeline, w *workload, done <-chan error, stall time.Duration, first *firstFetch) (Pass, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var (
		last     int64 = -1
		lastMove       = time.Now()
	)
	for {
		select {
		case <-ctx.Done():
			return Pass{}, ctx.Err()
		case err := <-done:
			return Pass{}, fmt.Errorf("%w: %w", errPipelineStopped, err)
		case <-tick.C:
		}
		offs, err := p.Store().Offsets()
		if err != nil {
			return Pass{}, err
		}
		read, complete := covered(offs, w.ends)
		if complete {
			return Pass{Records: w.records(), Elapsed: first.since(time.Now())}, nil
		}
		if read != last {
			last, lastMove = read, time.Now()
		} else if time.Since(lastMove) > stall {
			return Pass{}, fmt.Errorf("%w for %s after %d of %d records", ErrStalled, stall, read, w.records())
		}
	}
}

// covered sums the records below the stored offsets and says whether every
// partition reached its end.
func covered(offs, ends map[string]map[int32]int64) (read int64, complete bool) {
	complete = true
	for topic, parts := range ends {
		for p, end := range parts {
			next := min(offs[topic][p], end)
			read += next
			if next < end {
				complete = false
			}
		}
	}
	return read, complete
}

// benchConfig is the dataset of the workload, with every setting `recon run`
// would default. The window is long enough that no window can expire during
// a run: a matching replica must open no divergence.
func benchConfig(addr, dir, group string) (*config.Config, error) {
	cfg := &config.Config{
		Kafka:  config.Kafka{Brokers: []string{addr}, Group: group, ClientID: "recon-bench"},
		State:  config.State{Dir: dir},
		HTTP:   config.HTTP{Listen: "127.0.0.1:0"},
		Digest: config.Digest{Key: "recon-bench-digest-key-0123456789"},
		Datasets: []config.Dataset{{
			Name:   "orders",
			Key:    []string{"id"},
			Window: config.Duration(time.Hour),
			Source: config.System{Name: "postgres", Topic: SourceTopic, Format: "debezium-json", Version: "lsn"},
			Targets: []config.System{
				{Name: "replica", Topic: TargetTopic, Format: "debezium-json", Version: "lsn"},
			},
			Compare: config.Compare{Types: map[string]string{
				"amount": "decimal(2)", "created_at": "timestamp", "updated_at": "timestamp",
			}},
		}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	// No HTTP: nothing scrapes it. Validate wants a host:port, the pipeline
	// takes "-" for none.
	cfg.HTTP.Listen = "-"
	return cfg, nil
}

// settledCounts gathers recon's counts once every record is accounted for.
// The engine moves its metrics just after a commit returns, so the counters
// of the last batch may trail the stored offsets by a moment.
func settledCounts(ctx context.Context, p *pipeline.Pipeline, reg *prometheus.Registry, records int) (Counts, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(time.Second)
	for {
		c, err := gatherCounts(p, reg)
		if err != nil || c.Events+c.Ignored+c.Rejected >= int64(records) || time.Now().After(deadline) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-tick.C:
		}
	}
}

func gatherCounts(p *pipeline.Pipeline, reg *prometheus.Registry) (Counts, error) {
	var c Counts
	c.StateKeys, _, _ = p.Store().Stats()
	mfs, err := reg.Gather()
	if err != nil {
		return c, fmt.Errorf("gathering recon's metrics: %w", err)
	}
	counters := map[string]*int64{
		"recon_events_consumed_total":    &c.Events,
		"recon_events_ignored_total":     &c.Ignored,
		"recon_dlq_records_total":        &c.Rejected,
		"recon_divergences_opened_total": &c.DivergencesOpened,
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if n, ok := counters[mf.GetName()]; ok {
				*n += int64(m.GetCounter().GetValue())
			}
			if mf.GetName() == "recon_batch_commit_seconds" {
				c.Batches += int64(m.GetHistogram().GetSampleCount())
				c.BatchSeconds += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return c, nil
}
