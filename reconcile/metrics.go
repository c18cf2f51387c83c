package reconcile

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus metrics. Labels are bounded: dataset,
// system and target names come from config, kinds and ops from fixed sets.
type Metrics struct {
	events          *prometheus.CounterVec
	ignored         *prometheus.CounterVec
	dlq             *prometheus.CounterVec
	open            *prometheus.GaugeVec
	opened          *prometheus.CounterVec
	resolved        *prometheus.CounterVec
	convergence     *prometheus.HistogramVec
	detection       *prometheus.HistogramVec
	repairs         *prometheus.CounterVec
	waiting         prometheus.Gauge
	batches         prometheus.Histogram
	stateKeys       prometheus.GaugeFunc
	stateBytes      prometheus.GaugeFunc
	toastUnresolved *prometheus.CounterVec
	repairLatency   *prometheus.HistogramVec
	guardTripped    *prometheus.GaugeVec
}

var lagBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// NewMetrics registers the engine's metrics on reg. stats feeds the state gauges.
func NewMetrics(reg prometheus.Registerer, stats func() (keys int64, bytes int64)) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_events_consumed_total",
			Help: "Change events folded into state, by dataset, system and op.",
		}, []string{"dataset", "system", "op"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_events_ignored_total",
			Help: "Change events that changed nothing: duplicates and redelivered old versions.",
		}, []string{"dataset", "system"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_dlq_records_total",
			Help: "Records written to the dead-letter queue, by dataset, system and reason.",
		}, []string{"dataset", "system", "reason"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recon_divergences_open",
			Help: "Divergences currently open, by dataset, target and kind.",
		}, []string{"dataset", "target", "kind"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_divergences_opened_total",
			Help: "Divergences opened, by dataset, target and kind.",
		}, []string{"dataset", "target", "kind"}),
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_divergences_resolved_total",
			Help: "Divergences resolved (the pair converged), by dataset, target and kind.",
		}, []string{"dataset", "target", "kind"}),
		convergence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recon_convergence_lag_seconds",
			Help:    "Time from a source change being seen to the target matching it.",
			Buckets: lagBuckets,
		}, []string{"dataset", "target"}),
		detection: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recon_detection_delay_seconds",
			Help:    "Time from a window's expiry to its verdict.",
			Buckets: lagBuckets,
		}, []string{"dataset", "target"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_repairs_total",
			Help: "Repairs by dataset, action, mode and what became of them: when planned published, dry_run, pending or guarded; later approved, rejected, superseded, verified, failed or reverted.",
		}, []string{"dataset", "action", "mode", "outcome"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recon_windows_waiting_watermark",
			Help: "Expired windows held back because recon's own reading is not far enough along.",
		}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recon_batch_commit_seconds",
			Help:    "Time to durably commit one checkpoint of folded changes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		stateKeys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "recon_state_keys",
			Help: "Key states held in the store.",
		}, func() float64 { k, _ := stats(); return float64(k) }),
		stateBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "recon_state_bytes",
			Help: "Bytes of the state store on disk (LSM and value log).",
		}, func() float64 { _, b := stats(); return float64(b) }),
		toastUnresolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recon_unchanged_columns_unresolved_total",
			Help: "Columns sent as Debezium's unavailable placeholder with no previous value to keep.",
		}, []string{"dataset", "system"}),
		repairLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recon_repair_latency_seconds",
			Help:    "Time from a repair being published to the target converging on it (verified repairs).",
			Buckets: lagBuckets,
		}, []string{"dataset", "target"}),
		guardTripped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recon_repair_guard_tripped",
			Help: "1 while the blast-radius guard of a dataset holds its automatic repairs, else 0.",
		}, []string{"dataset"}),
	}
	reg.MustRegister(m.events, m.ignored, m.dlq, m.open, m.opened, m.resolved, m.convergence,
		m.detection, m.repairs, m.waiting, m.batches, m.stateKeys, m.stateBytes, m.toastUnresolved,
		m.repairLatency, m.guardTripped)
	return m
}
