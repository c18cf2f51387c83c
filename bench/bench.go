package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/recon-dev/recon/broker"
)

// Options size a run. Zero values take the defaults.
type Options struct {
	// Records is how many records are produced, both topics together
	// (default 200000): (Records+1)/2 source changes and the replica's copy
	// of Records/2 of them.
	Records int
	// Keys is how many distinct orders the changes go round (default 20000).
	Keys int
	// Partitions of each input topic (default 4).
	Partitions int
	// Dir is where the temporary state dir is made (default: the system's
	// temp dir). What a synced Badger commit costs depends on its
	// filesystem.
	Dir string
	// Logger receives the broker's and the pipeline's logs (default: none).
	Logger *slog.Logger
	// Out, if set, receives the report as the run goes; its last line is
	// "ratio: 0.NNN".
	Out io.Writer
	// StallTimeout fails a pass that reads nothing new for that long
	// (default 30s).
	StallTimeout time.Duration
}

// ErrStalled is returned when a pass stops making progress.
var ErrStalled = errors.New("no progress")

// Pass is one reading of the whole workload. Elapsed runs from the first
// fetched batch to the last record handled, so that group join and, for
// recon, opening the state store are left out of both passes alike.
type Pass struct {
	Records int
	Elapsed time.Duration
	// CPU is the process's CPU time over the whole pass, start-up included
	// and the in-process broker's share too; zero where it is not measured.
	CPU time.Duration
}

// CPUPerRecord is CPU over Records.
func (p Pass) CPUPerRecord() time.Duration {
	if p.Records == 0 {
		return 0
	}
	return p.CPU / time.Duration(p.Records)
}

func (p Pass) String() string {
	s := fmt.Sprintf("%9.0f records/s  (%d records in %s", p.Rate(), p.Records, p.Elapsed.Round(time.Millisecond))
	if p.CPU > 0 {
		s += fmt.Sprintf("; CPU %s, %.1fµs/record", p.CPU.Round(time.Millisecond), float64(p.CPUPerRecord())/float64(time.Microsecond))
	}
	return s + ")"
}

// Rate is records per second.
func (p Pass) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Records) / p.Elapsed.Seconds()
}

// Result is what a run measured.
type Result struct {
	Records, SourceRecords, TargetRecords int
	Keys, Partitions                      int
	Bytes                                 int64         // keys and values of every record
	Produce                               time.Duration // producing the workload, not timed in either pass
	// Raw is the median of rawPassCount raw passes, Full recon's one pass.
	Raw, Full Pass
	Recon     Counts
}

// BytesPerRecord is the mean size of a record's key and value.
func (r Result) BytesPerRecord() float64 {
	if r.Records == 0 {
		return 0
	}
	return float64(r.Bytes) / float64(r.Records)
}

// Ratio is the full rate over the raw rate.
func (r Result) Ratio() float64 {
	if raw := r.Raw.Rate(); raw > 0 {
		return r.Full.Rate() / raw
	}
	return 0
}

// Counts are what recon reported of its full pass: they show it did the
// whole job (every record folded in, nothing rejected) and that a matching
// workload opens no divergence.
type Counts struct {
	StateKeys         int64   // key states in Badger
	Events            int64   // change events folded in (recon_events_consumed_total)
	Ignored           int64   // events that changed nothing (recon_events_ignored_total)
	Rejected          int64   // records sent to the DLQ (recon_dlq_records_total)
	DivergencesOpened int64   // recon_divergences_opened_total
	Batches           int64   // synced checkpoints (recon_batch_commit_seconds count)
	BatchSeconds      float64 // their total time to write and sync (recon_batch_commit_seconds sum)
}

// MeanBatch is the mean time to write and sync one checkpoint.
func (c Counts) MeanBatch() time.Duration {
	if c.Batches == 0 {
		return 0
	}
	return time.Duration(c.BatchSeconds / float64(c.Batches) * float64(time.Second))
}

func (o *Options) defaults() error {
	if o.Records == 0 {
		o.Records = 200_000
	}
	if o.Keys == 0 {
		o.Keys = 20_000
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	var errs []error
	if o.Records < 2 {
		errs = append(errs, fmt.Errorf("records %d: want at least 2", o.Records))
	}
	if o.Keys < 1 {
		errs = append(errs, fmt.Errorf("keys %d: want at least 1", o.Keys))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d: want at least 1", o.Partitions))
	}
	return errors.Join(errs...)
}

// Run starts an in-memory broker, produces the workload, reads it raw, then
// with recon, and reports both rates. The broker is closed on return.
func Run(ctx context.Context, opts Options) (res Result, err error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	b, err := broker.Start(broker.Options{
		Partitions: opts.Partitions,
		Topics:     []string{SourceTopic, TargetTopic},
		Logger:     opts.Logger.With("component", "broker"),
	})
	if err != nil {
		return Result{}, fmt.Errorf("starting the broker: %w", err)
	}
	defer func() {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the broker: %w", cerr))
		}
	}()
	out := opts.Out
	res = Result{Records: opts.Records, Keys: opts.Keys, Partitions: opts.Partitions}
	fmt.Fprintf(out, "workload: %d records (source %d, target %d) over %d keys, %d partitions per topic\n",
		opts.Records, (opts.Records+1)/2, opts.Records/2, opts.Keys, opts.Partitions)

	start := time.Now()
	w, err := produce(ctx, b.Addr(), opts.Records, opts.Keys)
	if err != nil {
		return res, err
	}
	res.Produce = time.Since(start)
	res.SourceRecords, res.TargetRecords, res.Bytes = w.source, w.target, w.bytes
	fmt.Fprintf(out, "records: %d bytes/record (schema-less Debezium JSON, 10 columns), produced in %s\n",
		int64(res.BytesPerRecord()+0.5), res.Produce.Round(time.Millisecond))

	// Each pass starts from a collected heap so that it does not pay for
	// the garbage of the one before (rawPasses collects before each of its).
	if res.Raw, err = rawPasses(ctx, b.Addr(), w, opts.StallTimeout); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "raw consume: %s, median of %d passes\n", res.Raw, rawPassCount)

	runtime.GC()
	cpu := processCPU()
	if res.Full, res.Recon, err = fullPass(ctx, b.Addr(), w, "recon-bench", opts); err != nil {
		return res, fmt.Errorf("full pass: %w", err)
	}
	res.Full.CPU = cpuSince(cpu)
	c := res.Recon
	fmt.Fprintf(out, "full recon:  %s\n", res.Full)
	fmt.Fprintf(out, "badger: %d state keys, %d synced checkpoints (%s each on average to write and sync)\n",
		c.StateKeys, c.Batches, c.MeanBatch().Round(time.Microsecond))
	fmt.Fprintf(out, "events folded: %d, ignored: %d, rejected: %d, divergences opened: %d\n",
		c.Events, c.Ignored, c.Rejected, c.DivergencesOpened)
	fmt.Fprintf(out, "ratio: %.3f\n", res.Ratio())
	return res, nil
}

// rawPassCount is how many raw passes a run makes. A raw pass lasts a
// fraction of a second, so one busy moment on the machine can halve it; the
// median of three is steady enough, and costs little next to the full pass.
const rawPassCount = 3

// rawPasses reads the workload rawPassCount times, each in a new group, and
// returns the pass of median rate.
func rawPasses(ctx context.Context, addr string, w *workload, stall time.Duration) (Pass, error) {
	passes := make([]Pass, rawPassCount)
	for i := range passes {
		runtime.GC()
		cpu := processCPU()
		p, err := rawPass(ctx, addr, w, fmt.Sprintf("recon-bench-raw-%d", i+1), stall)
		if err != nil {
			return Pass{}, fmt.Errorf("raw pass %d: %w", i+1, err)
		}
		p.CPU = cpuSince(cpu)
		passes[i] = p
	}
	slices.SortFunc(passes, func(a, b Pass) int { return cmp.Compare(a.Rate(), b.Rate()) })
	return passes[len(passes)/2], nil
}

func cpuSince(start time.Duration) time.Duration {
	if start == 0 {
		return 0
	}
	return processCPU() - start
}
