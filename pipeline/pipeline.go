// Package pipeline wires recon's parts into the running service: state store,
// consumer, engine, sweeper, outbox publisher and HTTP endpoints. `recon run`,
// `recon demo` and the end-to-end tests all start recon through it.
package pipeline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/recon-dev/recon/compare"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/consumer"
	"github.com/recon-dev/recon/reconcile"
	"github.com/recon-dev/recon/repair"
	"github.com/recon-dev/recon/schemas"
	"github.com/recon-dev/recon/state"
)

// Options tune a pipeline beyond its config; zero values take the defaults.
type Options struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry // default: a fresh registry with Go and process collectors
	Now      func() time.Time
	// SweepTick is how often expired windows are looked for (default 100ms).
	SweepTick time.Duration
	// ListInterval is how often end offsets are listed (default 500ms).
	ListInterval time.Duration
	// ShutdownTimeout bounds the outbox flush on shutdown (default: the
	// config's shutdown_timeout, else 30s).
	ShutdownTimeout time.Duration
	// ExtraKafka are appended to both clients' options (tests: fault hooks).
	ExtraKafka []kgo.Opt
	// RulesVersion is stamped on every event; default the config's
	// rules_version.
	RulesVersion string
	// Publisher tunes the outbox publisher: its breaker timeout, produce
	// timeout and backoff (tests shorten them). Its Encoder is ignored: the
	// output format in the config decides it.
	Publisher repair.PublisherOptions
}

// Pipeline is one running recon.
type Pipeline struct {
	cfg       *config.Config
	opts      Options
	log       *slog.Logger
	store     *state.Store
	engine    *reconcile.Engine
	consumer  *consumer.Consumer
	producer  *kgo.Client
	publisher *repair.Publisher
	gate      *state.OutboxGate // nil without outbox.max_bytes
	registry  *prometheus.Registry
	progress  *consumer.Progress
	http      *http.Server
	listener  net.Listener
	httpTLS   bool         // the listener serves TLS (http.tls)
	kafka     *kafkaHealth // whether the brokers answer, from both clients' hooks
}

// New opens the state store, builds the clients and checks that Kafka is
// reachable. Close releases what New opened if Run is never called.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *Pipeline, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepTick <= 0 {
		opts.SweepTick = 100 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = cfg.ShutdownTimeout.D()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	if opts.RulesVersion == "" {
		opts.RulesVersion = cfg.RulesVersion
	}
	if opts.RulesVersion == "" {
		opts.RulesVersion = config.DefaultRulesVersion
	}
	p := &Pipeline{cfg: cfg, opts: opts, log: opts.Logger, registry: opts.Registry}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()

	encoder, err := outputEncoder(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pubOpts := opts.Publisher
	pubOpts.Encoder = nil
	if encoder != nil {
		pubOpts.Encoder = encoder
		opts.Now = millisClock(opts.Now)
		p.opts.Now = opts.Now
	}
	kopts, err := kafkaOpts(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	p.kafka = newKafkaHealth(opts.Now)
	kopts = append(kopts, kgo.WithHooks(p.kafka))
	kopts = append(kopts, opts.ExtraKafka...)

	p.store, err = state.Open(cfg.State.Dir, state.Options{Logger: opts.Logger.With("component", "badger"), AuditTopic: cfg.Outputs.Audit})
	if err != nil {
		return nil, fmt.Errorf("opening state: %w", err)
	}
	hasher := compare.NewHasher([]byte(cfg.Digest.Key))

	inputReg, err := inputRegistry(ctx, cfg)
	if err != nil {
		return nil, err
	}
	routes, datasets, policies, err := buildRoutes(cfg, hasher, inputReg)
	if err != nil {
		return nil, err
	}

	p.producer, err = kgo.NewClient(append([]kgo.Opt{
		kgo.ClientID(cfg.Kafka.ClientID + "-producer"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordRetries(3),
	}, kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("building the producer: %w", err)
	}
	if err := pingAndEnsureTopics(ctx, p.producer, cfg); err != nil {
		return nil, err
	}
	dlqMax := p.dlqRecordLimit(ctx, cfg.Outputs.DLQ)

	pubMetrics := repair.NewPublisherMetrics(opts.Registry, p.store)
	p.publisher = repair.NewPublisher(p.store, p.producer, pubMetrics, opts.Logger.With("component", "publisher"), pubOpts)

	// The outbox's bound pauses the consumer and holds the sweeper's
	// verdicts: a broker refusing recon's output for hours must fill no disk.
	var gate *state.OutboxGate
	if max := cfg.Outbox.MaxBytes; max > 0 {
		glog := opts.Logger.With("component", "outbox")
		gate = p.store.NewOutboxGate(max, func(closed bool, bytes int64) {
			if closed {
				glog.Warn("outbox full: input and windows wait until the publisher drains it", "bytes", bytes, "max_bytes", max)
			} else {
				glog.Info("outbox drained below its low-water mark: input and windows go on", "bytes", bytes, "max_bytes", max)
			}
		})
	}

	p.gate = gate
	p.progress = consumer.NewProgress(opts.Now)
	store := p.store // the gauges may be scraped after Close has cleared p.store
	engMetrics := reconcile.NewMetrics(opts.Registry, func() (int64, int64) {
		keys, lsm, vlog := store.Stats()
		return keys, lsm + vlog
	})
	// Kafka commits follow the checkpoints: the engine tells the consumer
	// which offsets are durable. The consumer is built after the engine.
	var marker atomic.Pointer[consumer.Consumer]
	p.engine, err = reconcile.New(p.store, reconcile.Options{
		Datasets:     datasets,
		Outputs:      reconcile.Outputs{Divergences: cfg.Outputs.Divergences, Repairs: cfg.Outputs.Repairs, DLQ: cfg.Outputs.DLQ},
		RulesVersion: opts.RulesVersion,
		Hasher:       hasher,
		Planner:      repair.NewPlanner(policies),
		Progress:     p.progress,
		Notifier:     p.publisher,
		Metrics:      engMetrics,
		Logger:       opts.Logger.With("component", "engine"),
		Now:          opts.Now,
		Gate:         engineGate(gate),
		Durable: func(offsets map[string]map[int32]int64) {
			if c := marker.Load(); c != nil {
				c.MarkDurable(offsets)
			}
		},
	})
	if err != nil {
		return nil, err
	}

	consumerOpts := kopts
	if id := cfg.Kafka.InstanceID; id != "" {
		// Static membership: a restart with the same id takes its
		// partitions back without a rebalance or a session timeout. Only
		// the consumer joins a group.
		consumerOpts = append(slices.Clone(kopts), kgo.InstanceID(id))
	}
	p.consumer, err = consumer.New(p.engine, p.progress, consumer.Options{
		Group: cfg.Kafka.Group, ClientID: cfg.Kafka.ClientID,
		Routes: routes, DLQTopic: cfg.Outputs.DLQ, Stored: store.Offsets,
		ListInterval: opts.ListInterval,
		Extra:        consumerOpts,
		Logger:       opts.Logger.With("component", "consumer"),
		Metrics:      consumer.NewMetrics(opts.Registry, p.progress),
		// Records over kafka.max_record_bytes go to the DLQ undecoded.
		MaxRecordBytes: cfg.Kafka.MaxRecordBytes,
		// What the DLQ topic accepts: a larger copy is cut to fit.
		DLQMaxBytes: dlqMax,
		Gate:        consumerGate(gate),
	})
	if err != nil {
		return nil, err
	}
	marker.Store(p.consumer)

	if err := p.setupHTTP(); err != nil {
		return nil, err
	}
	return p, nil
}

// engineGate and consumerGate keep a nil gate a nil interface.
func engineGate(g *state.OutboxGate) reconcile.OutboxGate {
	if g == nil {
		return nil
	}
	return g
}

func consumerGate(g *state.OutboxGate) consumer.Gate {
	if g == nil {
		return nil
	}
	return g
}

// kafkaOpts turns the kafka section into client options shared by both clients.
func kafkaOpts(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.TLS.Enabled() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka.tls.ca_file %s: no certificates found", k.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if k.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(k.TLS.CertFile, k.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("kafka.tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch k.SASL.Mechanism {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism %q is not supported", k.SASL.Mechanism)
	}
	return opts, nil
}

// pingAndEnsureTopics fails fast with one line when Kafka is unreachable, and
// creates the output topics that do not exist yet.
func pingAndEnsureTopics(ctx context.Context, cl *kgo.Client, cfg *config.Config) error {
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		if sasl := cfg.Kafka.SASL; sasl.Mechanism != "" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			// Some brokers close the connection on bad credentials rather
			// than answer SASL_AUTHENTICATION_FAILED; say what it most
			// likely means.
			return fmt.Errorf("kafka at %v closed the connection during %s authentication as %q: check kafka.sasl credentials: %w",
				cfg.Kafka.Brokers, sasl.Mechanism, sasl.Username, err)
		}
		return fmt.Errorf("kafka unreachable at %v: %w", cfg.Kafka.Brokers, err)
	}
	adm := kadm.NewClient(cl)
	topics := []string{cfg.Outputs.Divergences, cfg.Outputs.Repairs, cfg.Outputs.DLQ}
	if cfg.Outputs.Audit != "" {
		topics = append(topics, cfg.Outputs.Audit)
	}
	resp, err := adm.CreateTopics(pctx, -1, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating output topics: %w", err)
	}
	for _, t := range resp.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating output topic %s: %w", t.Topic, t.Err)
		}
	}
	return nil
}

// dlqRecordLimit is how many bytes of key, value and headers one DLQ record
// may carry: consumer.DefaultDLQMaxBytes, or less when the DLQ topic's
// max.message.bytes is smaller (4 KiB are left for the batch and record
// overhead). When the topic's config cannot be read the default stands: a
// topic that refuses it shows as publish failures, not as lost records.
func (p *Pipeline) dlqRecordLimit(ctx context.Context, topic string) int {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	limit := consumer.DefaultDLQMaxBytes
	rcs, err := kadm.NewClient(p.producer).DescribeTopicConfigs(ctx, topic)
	if err == nil && len(rcs) == 1 {
		err = rcs[0].Err
	}
	if err != nil {
		p.log.Warn("cannot read the DLQ topic's max.message.bytes; DLQ records are cut to the default", "topic", topic, "bytes", limit, "err", err)
		return limit
	}
	for _, c := range rcs[0].Configs {
		if c.Key != "max.message.bytes" || c.Value == nil {
			continue
		}
		if topicMax, err := strconv.Atoi(*c.Value); err == nil && topicMax > 0 {
			limit = min(limit, max(topicMax-4096, topicMax/2))
		}
	}
	return limit
}

// buildRoutes derives decoders, normalization rules and engine datasets; reg
// serves the Avro inputs' writer schemas (nil without Avro inputs).
func buildRoutes(cfg *config.Config, hasher *compare.Hasher, reg *schemas.Registry) ([]consumer.Route, []reconcile.Dataset, map[string]repair.Policy, error) {
	var routes []consumer.Route
	var datasets []reconcile.Dataset
	policies := make(map[string]repair.Policy)
	for _, d := range cfg.Datasets {
		hash, err := ConfigHash(d)
		if err != nil {
			return nil, nil, nil, err
		}
		rd := reconcile.Dataset{
			Name: d.Name, Window: d.Window.D(), SourceComplete: d.SourceComplete,
			Source:      reconcile.System{Name: d.Source.Name, Topic: d.Source.Topic, Rename: d.Source.Rename},
			PayloadFull: d.Repair.Payload != "reference",
			ConfigHash:  hash,
		}
		systems := append([]config.System{d.Source}, d.Targets...)
		for i, s := range systems {
			rules, err := SystemRules(d, s)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("dataset %s system %s: %w", d.Name, s.Name, err)
			}
			dec, err := SystemDecoder(s, reg)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("dataset %s system %s: %w", d.Name, s.Name, err)
			}
			routes = append(routes, consumer.Route{Dataset: d.Name, System: s.Name, Topic: s.Topic, Decoder: dec, Rules: rules, Hasher: hasher,
				// Only the source's rows, and only with payload: full, are kept.
				ColumnsOnly: i > 0 || !rd.PayloadFull})
			if i > 0 {
				rd.Targets = append(rd.Targets, reconcile.System{Name: s.Name, Topic: s.Topic, Rename: s.Rename, Rules: rules})
			}
		}
		datasets = append(datasets, rd)
		ratio := 0.0 // a config without defaults applied has the ratio trigger off
		if r := d.Repair.MaxDivergentRatio; r != nil {
			ratio = *r
		}
		policies[d.Name] = repair.Policy{Mode: d.Repair.Mode, AutoKinds: d.Repair.AutoKinds, Payload: d.Repair.Payload,
			MaxPerMinute: d.Repair.MaxPerMinute, MaxDivergentRatio: ratio}
	}
	return routes, datasets, policies, nil
}

// inputRegistryTimeout bounds the check that the schema registry answers.
const inputRegistryTimeout = 15 * time.Second

// inputRegistry is the schema registry client of the Avro inputs, nil when
// no input is Avro. It asks the registry once, so that a wrong URL or a
// registry that is down stops recon at start with one line rather than
// leaving every Avro partition waiting.
func inputRegistry(ctx context.Context, cfg *config.Config) (*schemas.Registry, error) {
	avro := false
	for _, d := range cfg.Datasets {
		avro = avro || config.IsAvroFormat(d.Source.Format)
		for _, t := range d.Targets {
			avro = avro || config.IsAvroFormat(t.Format)
		}
	}
	if !avro {
		return nil, nil
	}
	reg, err := schemas.NewRegistry(cfg.SchemaRegistry.URL)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, inputRegistryTimeout)
	defer cancel()
	if err := reg.Ping(pctx); err != nil {
		return nil, fmt.Errorf("schema registry unreachable at %s (Avro inputs read their schemas there): %w", reg.URL(), err)
	}
	return reg, nil
}

// SystemRules builds the normalization rules recon uses for system s of
// dataset d. Tools that must judge rows exactly as recon does use it too.
func SystemRules(d config.Dataset, s config.System) (*compare.Rules, error) {
	return compare.NewRules(d.Key, s.Rename, ignoreFor(d, s), d.Compare.Types, d.Compare.FloatTolerance,
		compare.CaseInsensitive(d.Compare.CaseInsensitive))
}

// ignoreFor adds a target's lineage field to the ignored columns: it is
// metadata about the row, which the source row never has.
func ignoreFor(d config.Dataset, s config.System) []string {
	field, ok := strings.CutPrefix(s.Lineage, "field:")
	if !ok {
		return d.Compare.Ignore
	}
	if to, renamed := s.Rename[field]; renamed {
		field = to
	}
	return append(slices.Clone(d.Compare.Ignore), field)
}

// Decoder returns the decoder of system s's format, for the formats that need
// no schema registry (the JSON ones); see SystemDecoder.
func Decoder(s config.System) (consumer.Decoder, error) { return SystemDecoder(s, nil) }

// SystemDecoder returns the decoder recon uses for system s. The Avro formats
// read their writer schemas from reg, which they require.
func SystemDecoder(s config.System, reg *schemas.Registry) (consumer.Decoder, error) {
	version, err := compare.ParseVersionSpec(s.Version)
	if err != nil {
		return nil, err
	}
	lineage, err := compare.ParseLineageSpec(s.Lineage)
	if err != nil {
		return nil, err
	}
	switch s.Format {
	case "debezium-json":
		return consumer.NewDebeziumJSON(version, lineage), nil
	case "flat-json":
		return consumer.NewFlatJSON(version, lineage), nil
	case "debezium-avro", "flat-avro":
		if reg == nil {
			return nil, fmt.Errorf("format %s needs a schema registry (schema_registry.url)", s.Format)
		}
		if s.Format == "flat-avro" {
			return consumer.NewFlatAvro(reg, version, lineage), nil
		}
		return consumer.NewDebeziumAvro(reg, version, lineage), nil
	default:
		return nil, fmt.Errorf("format %q is not supported by this build yet", s.Format)
	}
}

// Registry is the pipeline's metric registry.
func (p *Pipeline) Registry() *prometheus.Registry { return p.registry }

// Store is the pipeline's state store (for tools and tests).
func (p *Pipeline) Store() *state.Store { return p.store }

// Addr is the HTTP listener's address, or "" without HTTP.
func (p *Pipeline) Addr() string {
	if p.listener == nil {
		return ""
	}
	return p.listener.Addr().String()
}

// Ready reports whether every readiness check passes (see Readiness).
func (p *Pipeline) Ready() bool { return p.Readiness().OK() }

// Run runs every part until ctx is done or one fails, then shuts down in
// order: stop consuming (the batch in hand finishes), stop the sweeper, flush
// the outbox within the shutdown timeout, close clients and the store.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		p.publisher.Run(pubCtx)
	}()

	start("consumer", p.consumer.Run)
	start("sweeper", func(ctx context.Context) error { return p.engine.RunSweeper(ctx, p.opts.SweepTick) })
	if p.listener != nil {
		start("http", p.serveHTTP)
	}
	p.log.Info("recon running", "datasets", len(p.cfg.Datasets), "http", p.Addr())
	<-ctx.Done()
	wg.Wait()
	// The consumer and the sweeper have stopped: checkpoint what they folded.
	if err := p.engine.Flush(context.WithoutCancel(ctx)); err != nil {
		p.log.Error("checkpointing state on shutdown failed; the next start replays from the last checkpoint", "err", err)
	}

	stopPub()
	<-pubDone
	fctx, fcancel := context.WithTimeout(context.Background(), p.opts.ShutdownTimeout)
	defer fcancel()
	if err := p.publisher.Flush(fctx); err != nil {
		p.log.Warn("shutting down with records left in the outbox; they are published on the next start", "err", err)
	}
	p.log.Info("recon stopped")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close releases clients and the store; Run calls it on return.
func (p *Pipeline) Close() {
	if p.consumer != nil {
		p.consumer.Close()
		p.consumer = nil
	}
	if p.producer != nil {
		p.producer.Close()
		p.producer = nil
	}
	if p.listener != nil {
		p.listener.Close() // already closed if Run served on it
	}
	if p.store != nil {
		if err := p.store.Close(); err != nil {
			p.log.Warn("closing state", "err", err)
		}
		p.store = nil
	}
}
