package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/pipeline"
	"github.com/recon-dev/recon/schemas"
)

// Topics of the demo, named as Debezium names them: <prefix>.<schema>.<table>
// for Postgres, <prefix>.<database>.<table> for MySQL.
const (
	SourceTopic = "pg.public.orders"
	TargetTopic = "replica.shop.orders"
)

// demoDigestKey keys the demo's digests. It is fixed because the demo's data
// is made up; a real deployment takes the key from ${RECON_DIGEST_KEY}.
const demoDigestKey = "recon-demo-digest-key-not-a-secret"

// Options configure a run. Zero values take the defaults.
type Options struct {
	Keys       int           // key space of the orders table (default 500)
	Rate       float64       // source changes per second (default 200)
	Duration   time.Duration // how long the source keeps changing (default 20s)
	Window     time.Duration // recon's window (default 2s)
	Seed       uint64        // names the run's changes, faults and noise; 0 is a seed like any other
	Partitions int           // partitions of every topic (default 3)
	Format     string        // FormatJSON (default) or FormatAvro
	Faults     *Faults       // nil: DefaultFaults
	// Noise is the fraction of changes given each kind of harmless noise
	// (default 0.02; negative: none).
	Noise float64
	// ForceEachKind injects every kind of fault at its first chance after
	// the initial inserts, so that a short run still shows all four.
	ForceEachKind bool
	// SettleTimeout bounds the wait, once the source stops, for every verdict,
	// resolution and repair (default 4*Window + 20s).
	SettleTimeout time.Duration
	// Retention is how long the embedded broker keeps the records of the
	// source and target topics (default 1m; negative: for ever). The broker
	// lives in the demo's process, and a long run would otherwise hold all
	// of its input in memory; recon reads far within a minute.
	Retention time.Duration
	Progress  io.Writer    // a progress line every second; nil for none
	Logger    *slog.Logger // recon's own logs; nil discards them
	// Chaos, if set, runs recon as a child process that is killed and
	// restarted (see Chaos) instead of in this process.
	Chaos *Chaos
}

func (o *Options) setDefaults() {
	if o.Keys == 0 {
		o.Keys = 500
	}
	if o.Rate == 0 {
		o.Rate = 200
	}
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.Window == 0 {
		o.Window = 2 * time.Second
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.Format == "" {
		o.Format = FormatJSON
	}
	if o.Faults == nil {
		f := DefaultFaults
		o.Faults = &f
	}
	switch {
	case o.Noise == 0:
		o.Noise = 0.02
	case o.Noise < 0:
		o.Noise = 0
	}
	if o.Chaos != nil {
		o.Chaos.setDefaults()
	}
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 4*o.Window + 20*time.Second
		if o.Chaos != nil { // kills go on once the source stops
			o.SettleTimeout += time.Duration(o.Chaos.Kills) * (o.Chaos.MaxUp + 2*time.Second)
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Retention == 0 {
		o.Retention = time.Minute
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Keys < 2 {
		errs = append(errs, fmt.Errorf("keys %d: want at least 2", o.Keys))
	}
	if o.Rate <= 0 {
		errs = append(errs, fmt.Errorf("rate %g: want more than 0 changes/s", o.Rate))
	}
	if o.Duration <= 0 || o.SettleTimeout <= 0 {
		errs = append(errs, errors.New("duration and settle timeout must be positive"))
	}
	if o.Window < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("window %s: want at least 100ms", o.Window))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d: want at least 1", o.Partitions))
	}
	if o.Chaos != nil {
		if err := o.Chaos.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Format != FormatJSON && o.Format != FormatAvro {
		errs = append(errs, fmt.Errorf("format %q: want %s or %s", o.Format, FormatJSON, FormatAvro))
	}
	f := o.Faults
	for _, r := range []float64{f.Missing, f.Lagging, f.Conflict, f.Orphan, o.Noise} {
		if r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("rate %g: want a fraction from 0 to 1", r))
		}
	}
	if f.Lagging+f.Conflict > 1 {
		errs = append(errs, errors.New("lagging and conflict rates share the updates: their sum must not exceed 1"))
	}
	return errors.Join(errs...)
}

// demoConfig is the recon.yaml of the demo, parsed by the same code as any
// other: the systems in the run's format, the dataset, its window, and auto
// repair of every kind. registryURL is the schema registry of an avro run.
func demoConfig(brokerAddr, registryURL, stateDir string, window time.Duration, format string) (*config.Config, error) {
	return config.Parse([]byte(demoConfigText(brokerAddr, registryURL, stateDir, "127.0.0.1:0", window, format, "")), nil)
}

// demoConfigText is demoConfig's YAML; extra is appended at the top level.
func demoConfigText(brokerAddr, registryURL, stateDir, listen string, window time.Duration, format, extra string) string {
	srcFormat, tgtFormat, outFormat, registry := "debezium-json", "debezium-json", "json", ""
	if format == FormatAvro {
		srcFormat, tgtFormat, outFormat = "debezium-avro", "flat-json", "avro"
		registry = fmt.Sprintf("schema_registry: {url: %q}", registryURL)
	}
	text := fmt.Sprintf(`
kafka: {brokers: [%q], group: recon-demo, client_id: recon-demo}
%s
state: {dir: %q}
http: {listen: %q}
digest: {key: %q}
outputs: {format: %s}
datasets:
  - name: orders
    key: [id]
    window: %s
    source: {name: postgres, topic: %s, format: %s, version: lsn}
    targets:
      - {name: replica, topic: %s, format: %s, version: position,
         lineage: "field:_src_lsn", rename: {order_id: id}}
    compare:
      ignore: [loaded_at, updated_at]
      types: {amount: "decimal(2)", created_at: timestamp, updated_at: timestamp}
    # Every kind is repaired at once; the blast-radius guard is set out of
    # reach, and its ratio trigger off, because a demo at a high --rate
    # diverges en masse on purpose.
    repair: {mode: auto, auto_kinds: [missing, lagging, orphan, conflict], payload: full,
             max_per_minute: 1000000, max_divergent_ratio: 0}
`, brokerAddr, registry, stateDir, listen, demoDigestKey, outFormat, window, SourceTopic, srcFormat, TargetTopic, tgtFormat)
	return text + extra
}

// runner holds one run's parts. Run owns it; its main loop is the only
// goroutine that touches the source and the replication queue.
type runner struct {
	opts    Options
	broker  *broker.Broker
	cfg     *config.Config
	formats formatPair
	dg      *digester
	prod    *kgo.Client
	adm     *kadm.Client
	wl      *workload
	replica *Replica
	obs     *Observer
	rc      *RepairConsumer
	dlq     *dlqReader
	pipe    *pipeline.Pipeline // recon in this process, or
	sup     *supervisor        // recon in child processes (Options.Chaos)

	trace *trace

	pending pendingQueue
	lastDue map[int64]time.Time // per key: replication applies changes in order
	seq     uint64
	mu      sync.Mutex // guards what produce callbacks write
	prodErr error      // the first error producing or rendering a record
	// srcAcked is when the broker had each source change still awaiting its
	// copy. A copy that reached the broker a window or more after its source
	// change is a real divergence recon is right to flag: it voids the ground
	// truth for its key. Only an overloaded machine makes them.
	srcAcked map[uint64]time.Time
	late     map[int64]bool
	maxDelay time.Duration

	mem memSampler
}

// Run runs the demo: broker, source, replica, repair consumer and recon, the
// workload for opts.Duration, then waits until recon went quiet with every
// verdict resolved and the replica converged, or the settle timeout passed.
// It returns the report whatever the outcome; the error is for a run that
// could not be carried out (and for ctx ending, with the report so far).
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	r := &runner{opts: opts, lastDue: make(map[int64]time.Time), trace: newTrace(started),
		srcAcked: make(map[uint64]time.Time), late: make(map[int64]bool)}
	cleanup, err := r.setup(ctx)
	defer cleanup()
	if err != nil {
		return nil, err
	}

	// recon, as `recon run` starts it: here, or as a child process.
	reconCtx, stopRecon := context.WithCancel(ctx)
	reconDone := make(chan struct{})
	var reconErr error
	ready, addr := r.pipe.Ready, ""
	if r.sup != nil {
		ready, addr = r.sup.ready(ctx), r.sup.addr
		go func() {
			defer close(reconDone)
			reconErr = r.sup.run(reconCtx)
		}()
	} else {
		addr = r.pipe.Addr()
		go func() {
			defer close(reconDone)
			reconErr = r.pipe.Run(reconCtx)
		}()
	}
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			stopRecon()
			<-reconDone
		}
		return reconErr
	}
	defer stop()
	if err := waitFor(ctx, 60*time.Second, reconDone, ready); err != nil {
		if errors.Is(err, errStopped) {
			err = stop()
		}
		return nil, fmt.Errorf("waiting for recon to join its group: %w", err)
	}
	fmt.Fprintf(opts.Progress, "recon demo: broker %s, recon's metrics at http://%s/metrics\n", r.broker.Addr(), addr)
	if c := opts.Chaos; c != nil {
		fmt.Fprintf(opts.Progress, "chaos: recon runs as a child process, killed %d times with SIGKILL (crash points %s)\n", c.Kills, c.CrashAt)
	}
	if url := r.broker.SchemaRegistryURL(); url != "" {
		fmt.Fprintf(opts.Progress, "schema registry at %s\n", url)
	}
	fmt.Fprintf(opts.Progress, "%s → %s, %s events\n", r.cfg.Datasets[0].Source.Format, r.cfg.Datasets[0].Targets[0].Format, r.cfg.Outputs.Format)
	fmt.Fprintf(opts.Progress, "%d keys, %g changes/s for %s, window %s, seed %d, %d partitions\n",
		opts.Keys, opts.Rate, opts.Duration, opts.Window, opts.Seed, opts.Partitions)

	readCtx, stopReaders := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	readers.Add(3)
	go func() { defer readers.Done(); r.obs.run(readCtx) }()
	go func() { defer readers.Done(); r.rc.run(readCtx) }()
	go func() { defer readers.Done(); r.dlq.run(readCtx) }()
	stopReading := func() { stopReaders(); readers.Wait() }
	defer stopReading()

	t, runErr := r.drive(ctx, reconDone)

	// Stop in order: recon first (its outbox is flushed), then the readers
	// once they have read all it published, then the producer.
	if err := stop(); err != nil {
		runErr = fmt.Errorf("recon: %w", err) // it explains whatever else failed
	}
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitFor(dctx, 10*time.Second, nil, r.readersCaughtUp(dctx)); err != nil && runErr == nil {
		runErr = fmt.Errorf("reading recon's last events: %w", err)
	}
	stopReading()
	if err := r.prod.Flush(dctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("flushing the simulator's records: %w", err)
	}
	rep := r.report(t)
	rep.Wall = time.Since(started)
	return rep, runErr
}

// setup starts the broker and builds every part. The returned cleanup
// releases whatever was built, in reverse order, even after an error.
func (r *runner) setup(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	avro := r.opts.Format == FormatAvro
	bopts := broker.Options{
		Partitions: r.opts.Partitions,
		Topics:     []string{SourceTopic, TargetTopic, config.DefaultDivergences, config.DefaultRepairs, config.DefaultDLQ},
	}
	if avro {
		bopts.SchemaRegistry = "127.0.0.1:0"
	}
	if r.opts.Retention > 0 {
		// Retention is enforced every few seconds rather than kfake's hour.
		bopts.Extra = append(bopts.Extra, kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "5000"}))
	}
	r.broker, err = broker.Start(bopts)
	if err != nil {
		return cleanup, fmt.Errorf("starting the broker: %w", err)
	}
	undo = append(undo, func() { r.broker.Close() })
	dir, err := os.MkdirTemp("", "recon-demo-*")
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	if r.opts.Chaos != nil {
		err = r.setupChaos(dir)
	} else {
		r.cfg, err = demoConfig(r.broker.Addr(), r.broker.SchemaRegistryURL(), dir, r.opts.Window, r.opts.Format)
	}
	if err != nil {
		return cleanup, fmt.Errorf("demo config: %w", err)
	}
	r.formats = jsonFormats
	var reg *schemas.Registry // reads the writer schemas of every Avro record the simulator reads
	var events *avroEvents
	if avro {
		src, err := newAvroSource(ctx, r.broker.SchemaRegistryURL())
		if err != nil {
			return cleanup, err
		}
		r.formats = formatPair{src: src, tgt: flatTarget{}}
		if reg, err = schemas.NewRegistry(r.broker.SchemaRegistryURL(), schemas.RegistryHTTPClient(registryHTTPClient())); err != nil {
			return cleanup, err
		}
		events = newAvroEvents(reg)
	}
	if r.dg, err = newDigester(r.cfg, reg, r.formats); err != nil {
		return cleanup, err
	}
	r.prod, err = kgo.NewClient(kgo.SeedBrokers(r.broker.Addr()), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, r.prod.Close)
	r.adm = kadm.NewClient(r.prod)
	if r.opts.Retention > 0 {
		// The broker frees a partition's records a segment at a time:
		// small segments keep what it holds close to the retention.
		ms, seg := strconv.FormatInt(r.opts.Retention.Milliseconds(), 10), strconv.Itoa(8<<20)
		resp, err := r.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "retention.ms", Value: &ms},
			{Op: kadm.SetConfig, Name: "segment.bytes", Value: &seg},
		}, SourceTopic, TargetTopic)
		if err == nil {
			for _, t := range resp {
				err = errors.Join(err, t.Err)
			}
		}
		if err != nil {
			return cleanup, fmt.Errorf("setting the input topics' retention: %w", err)
		}
	}
	r.wl = newWorkload(r.opts.Seed, r.opts.Keys, r.opts.Window, *r.opts.Faults, r.opts.Noise, r.opts.ForceEachKind)
	r.replica = newReplica(TargetTopic, r.formats.tgt, r.emit)
	r.replica.trace, r.replica.onCopy = r.trace, r.copied
	if r.obs, err = newObserver(r.broker.Addr(), r.cfg.Outputs.Divergences, events); err != nil {
		return cleanup, err
	}
	undo = append(undo, r.obs.close)
	if r.rc, err = newRepairConsumer(r.broker.Addr(), r.cfg.Outputs.Repairs, events, r.replica, r.dg.targetDigest); err != nil {
		return cleanup, err
	}
	undo = append(undo, r.rc.close)
	if r.dlq, err = newDLQReader(r.broker.Addr(), r.cfg.Outputs.DLQ); err != nil {
		return cleanup, err
	}
	undo = append(undo, r.dlq.close)
	if r.sup != nil {
		return cleanup, nil
	}
	// Run closes the pipeline; New closes what it opened when it fails.
	if r.pipe, err = pipeline.New(ctx, r.cfg, pipeline.Options{Logger: r.opts.Logger}); err != nil {
		return cleanup, fmt.Errorf("starting recon: %w", err)
	}
	return cleanup, nil
}

// emit produces one record with the default (Kafka's murmur2) partitioner.
// The source's key bytes differ from the replica's (schema wrapper, id vs
// order_id), so one key lands in different partition numbers of the two
// topics: a single recon instance, as here, reads them all.
func (r *runner) emit(rec record) {
	r.prod.Produce(context.Background(), &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value}, func(_ *kgo.Record, err error) {
		if err != nil {
			r.fail(err)
			return
		}
		if rec.acked != nil {
			rec.acked(time.Now())
		}
	})
}

// copied measures how long after its source change a copy reached the broker.
func (r *runner) copied(id int64, srcLSN uint64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	src, ok := r.srcAcked[srcLSN]
	if !ok {
		return // the copy overtook its source record: not late
	}
	delete(r.srcAcked, srcLSN)
	d := at.Sub(src)
	r.maxDelay = max(r.maxDelay, d)
	if d >= r.opts.Window {
		r.late[id] = true
	}
}

// fail records the first error that keeps the simulator from producing
// its records; the main loop stops on it.
func (r *runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prodErr == nil {
		r.prodErr = err
	}
}

func (r *runner) produceErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.prodErr
}

// timings are the phases of a run.
type timings struct {
	workload, settle time.Duration
	settled          bool
}

// drive is the main loop: it makes source changes at the rate, copies them
// to the replica when their delay is up, prints progress and, once the
// source has stopped, checks every 100ms whether the run has settled.
func (r *runner) drive(ctx context.Context, reconDone <-chan struct{}) (timings, error) {
	var t timings
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	r.mem.sample(0)
	nextLine, nextCheck := start.Add(time.Second), time.Time{}
	workEnd := start.Add(r.opts.Duration)
	producing, generated := true, 0
	var settleStart time.Time
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-reconDone:
			return t, errors.New("recon stopped during the run")
		case now = <-tick.C:
		}
		if err := r.produceErr(); err != nil {
			return t, fmt.Errorf("producing: %w", err)
		}
		if producing && now.Before(workEnd) {
			for due := int(r.opts.Rate*now.Sub(start).Seconds()) - generated; due > 0; due-- {
				st, ok := r.wl.next(now)
				if !ok { // every key is frozen: nothing left to change
					workEnd = now
					break
				}
				r.emitSource(st)
				r.schedule(st, now)
				generated++
			}
		} else if producing {
			producing, settleStart = false, now
			t.workload = now.Sub(start)
		}
		r.replicateDue(now)
		if !now.Before(nextLine) {
			r.progressLine(now.Sub(start), producing, generated)
			nextLine = nextLine.Add(time.Second)
		}
		if producing || now.Before(nextCheck) {
			continue
		}
		nextCheck = now.Add(100 * time.Millisecond)
		done, err := r.settled(ctx)
		if err != nil {
			return t, err
		}
		t.settle = now.Sub(settleStart)
		if done || t.settle > r.opts.SettleTimeout {
			t.settled = done
			return t, nil
		}
	}
}

func (r *runner) emitSource(st step) {
	ch := st.change
	fate := ""
	switch {
	case st.drop:
		fate = fmt.Sprintf(" — the replica will drop it (%s)", st.fault)
	case st.corrupt != 0:
		fate = fmt.Sprintf(" — the replica will corrupt its amount (%s)", st.fault)
	}
	r.trace.add(ch.Row.ID, ch.At, "source %c lsn=%d %s%s", ch.Op, ch.LSN, summary(&ch.Row, ch.Op), fate)
	key, err := r.formats.src.key(ch.Row.ID)
	if err != nil {
		r.fail(err)
		return
	}
	value, err := r.formats.src.value(ch)
	if err != nil {
		r.fail(err)
		return
	}
	rec := record{Topic: SourceTopic, Key: key, Value: value}
	rec.acked = func(at time.Time) {
		r.trace.add(ch.Row.ID, at, "kafka has source lsn=%d", ch.LSN)
		if !st.drop { // a dropped change has no copy to wait for
			r.mu.Lock()
			r.srcAcked[ch.LSN] = at
			r.mu.Unlock()
		}
	}
	r.emit(rec)
	if st.dupSrc {
		dup := rec
		dup.acked = nil
		r.emit(dup)
	}
	if ch.Op == 'd' {
		r.emit(record{Topic: SourceTopic, Key: rec.Key}) // the tombstone
	}
}

// schedule queues a change for the replica. A replica applies changes in
// commit order, so a key's change never overtakes its predecessor.
func (r *runner) schedule(st step, now time.Time) {
	if st.drop {
		return
	}
	id := st.change.Row.ID
	due := now.Add(st.delay)
	if last := r.lastDue[id]; due.Before(last) {
		due = last
	}
	r.lastDue[id] = due
	r.seq++
	heap.Push(&r.pending, pendingItem{due: due, seq: r.seq, st: st})
}

func (r *runner) replicateDue(now time.Time) {
	for len(r.pending) > 0 && !r.pending[0].due.After(now) {
		it := heap.Pop(&r.pending).(pendingItem)
		r.replica.copyChange(it.st.change, it.st.corrupt, it.st.nz, now)
	}
}

// progressLine prints the run's counts and the process's memory (recon, the
// broker and the simulator together) once a second; a soak shows there
// whether memory stays flat.
func (r *runner) progressLine(elapsed time.Duration, producing bool, generated int) {
	opened, resolved := r.obs.counts()
	rc := r.rc.counts()
	phase := ""
	if !producing {
		phase = "  (settling)"
	}
	m := r.mem.sample(elapsed)
	fmt.Fprintf(r.opts.Progress, "t=%-4s source=%d target=%d opened=%d resolved=%d repairs=%d applied=%d rate=%.0f/s rss=%s anon=%s heap=%s%s\n",
		elapsed.Round(time.Second), r.wl.inserts+r.wl.updates+r.wl.deletes, r.replica.Writes(),
		opened, resolved, rc.Published, rc.Applied, float64(generated)/elapsed.Seconds(), mib(m.rss), mib(m.anon), mib(m.heapInuse), phase)
}

var errStopped = errors.New("stopped")

// waitFor polls cond every 10ms until it holds, ctx ends, d passes or stop
// is closed.
func waitFor(ctx context.Context, d time.Duration, stop <-chan struct{}, cond func() bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return errStopped
		case <-deadline.C:
			return fmt.Errorf("not done after %s", d)
		case <-tick.C:
		}
	}
	return nil
}

type pendingItem struct {
	due time.Time
	seq uint64 // ties keep scheduling order
	st  step
}

type pendingQueue []pendingItem

func (q pendingQueue) Len() int { return len(q) }
func (q pendingQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q pendingQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pendingQueue) Push(x any)   { *q = append(*q, x.(pendingItem)) }
func (q *pendingQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
