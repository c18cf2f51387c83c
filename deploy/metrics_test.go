package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/pipeline"
)

// metricName matches a recon metric name inside PromQL. Label values and
// legends are not searched, only expressions.
var metricName = regexp.MustCompile(`\brecon_[a-z0-9_]+`)

// baseName maps a histogram's series name to the metric's name.
func baseName(n string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(n, suf); ok {
			return b
		}
	}
	return n
}

// namesIn returns the recon_* metric names used by the PromQL expressions.
// A name that is itself documented (a counter may end in _count one day) is
// kept as it is; otherwise histogram suffixes are stripped.
func namesIn(exprs []string, known map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			if !known[n] {
				n = baseName(n)
			}
			out[n] = true
		}
	}
	return out
}

// dashboardExprs returns every PromQL expression in the dashboard: panel
// targets (rows nest panels too) and templating queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("grafana/recon.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/recon.json: %v", err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p struct {
				Title   string            `json:"title"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has a target without an expr", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// Grafana stores a query variable's query as a string or as an
		// object with a "query" field.
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("templating query: %v", err)
			}
			s = q.Query
		}
		exprs = append(exprs, s)
	}
	if len(exprs) == 0 {
		t.Fatal("no expressions found in grafana/recon.json")
	}
	return exprs
}

// rulesExprs returns every expr in deploy/prometheus/*.yaml and *.yml rule
// files; none when the directory does not exist yet.
func rulesExprs(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"prometheus/*.yaml", "prometheus/*.yml"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	var exprs []string
	for _, f := range files {
		for _, doc := range yamlDocs(t, f) {
			var rf struct {
				Groups []struct {
					Rules []struct {
						Expr string `yaml:"expr"`
					} `yaml:"rules"`
				} `yaml:"groups"`
			}
			// Rule unit-test files have another shape; they carry no
			// groups and contribute nothing.
			if err := doc.Decode(&rf); err != nil {
				continue
			}
			for _, g := range rf.Groups {
				for _, r := range g.Rules {
					exprs = append(exprs, r.Expr)
				}
			}
		}
	}
	return exprs
}

// documentedMetrics is the README's Metrics table: names and their types.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	m, err := readmeMetrics(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestReadmeMetricsTableParses(t *testing.T) {
	doc := documentedMetrics(t)
	for _, n := range []string{"recon_events_consumed_total", "recon_outbox_records", "recon_outbox_bytes", "recon_state_keys", "recon_state_bytes"} {
		if _, ok := doc[n]; !ok {
			t.Errorf("README Metrics table: %s not parsed (got %v)", n, doc)
		}
	}
}

const (
	srcTopic = "pg.public.orders"
	tgtTopic = "wh.public.orders"
)

// running is a recon started against an in-memory broker, shared by the
// tests that need the names a running recon exports.
type running struct {
	exported map[string]string // name → type, as gathered
	note     error             // traffic that did not show in time
	err      error
}

var (
	runOnce   sync.Once
	runResult running
)

// exportedMetrics starts one recon for the package's tests, drives a little
// traffic through it and gathers its registry. Traffic: one source change and
// the matching target change (a window opens and closes with a match), and
// one malformed source record (a decode error and a DLQ record).
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	runOnce.Do(func() { runResult = startRecon(t) })
	if runResult.err != nil {
		t.Fatal(runResult.err)
	}
	return runResult.exported
}

// startRecon runs the pipeline until it has exported everything the traffic
// can produce. It reports errors as a value because its resources outlive the
// first test that calls it only until that test ends: everything is stopped
// before it returns, and the gathered names are kept.
func startRecon(t *testing.T) (r running) {
	b, err := broker.Start(broker.Options{Partitions: 1, Topics: []string{srcTopic, tgtTopic}})
	if err != nil {
		return running{err: err}
	}
	defer b.Close()
	dir, err := os.MkdirTemp("", "recon-deploy-test-")
	if err != nil {
		return running{err: err}
	}
	defer os.RemoveAll(dir)
	cfgText := fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-deploy-test}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: ${RECON_DIGEST_KEY}}
datasets:
  - name: orders
    key: [id]
    window: 200ms
    source: {name: postgres, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: warehouse, topic: %s, format: debezium-json, version: offset}
    repair: {mode: auto, auto_kinds: [missing, lagging, orphan], payload: full}
`, b.Addr(), dir, srcTopic, tgtTopic)
	cfg, err := config.Parse([]byte(cfgText), digestKeyEnv)
	if err != nil {
		return running{err: fmt.Errorf("test config: %w", err)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := pipeline.New(ctx, cfg, pipeline.Options{SweepTick: 20 * time.Millisecond, ListInterval: 50 * time.Millisecond})
	if err != nil {
		return running{err: err}
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := func() error {
		cancel()
		return <-done
	}
	fail := func(err error) running {
		if serr := stop(); serr != nil {
			err = fmt.Errorf("%w (and pipeline run: %v)", err, serr)
		}
		return running{err: err}
	}
	if err := poll(10*time.Second, "consumer joined", p.Ready); err != nil {
		return fail(err)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		return fail(err)
	}
	defer prod.Close()
	now := time.Now().UnixMilli()
	row := `{"id":1,"status":"paid"}`
	recs := []*kgo.Record{
		{Topic: srcTopic, Key: []byte(`{"id":1}`), Value: []byte(fmt.Sprintf(
			`{"before":null,"after":%s,"source":{"connector":"postgresql","ts_ms":%d,"lsn":100},"op":"c","ts_ms":%d}`, row, now, now))},
		{Topic: srcTopic, Key: []byte(`{"id":2}`), Value: []byte(`{not json`)},
		{Topic: srcTopic, Key: []byte(`{"id":3}`), Value: []byte(fmt.Sprintf(
			`{"before":null,"after":{"id":3,"status":"new"},"source":{"connector":"postgresql","ts_ms":%d,"lsn":101},"op":"c","ts_ms":%d}`, now, now))},
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		return fail(fmt.Errorf("produce: %w", err))
	}
	// The target's change must come after the source's has opened a window,
	// or there is no lag to observe.
	if err := poll(10*time.Second, "the source changes consumed", func() bool { return hasSeries(p, "recon_events_consumed_total") }); err != nil {
		return fail(err)
	}
	tgt := &kgo.Record{Topic: tgtTopic, Key: []byte(`{"id":1}`), Value: []byte(fmt.Sprintf(
		`{"before":null,"after":%s,"source":{"connector":"mysql","ts_ms":%d},"op":"c","ts_ms":%d}`, row, now, now))}
	if err := prod.ProduceSync(context.Background(), tgt).FirstErr(); err != nil {
		return fail(fmt.Errorf("produce: %w", err))
	}

	// What is exported is what a Prometheus server scraping /metrics sees.
	gather := func() (map[string]string, error) {
		resp, err := http.Get("http://" + p.Addr() + "/metrics")
		if err != nil {
			return nil, fmt.Errorf("scraping recon: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("scraping recon: %s", resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("parsing the scrape: %w", err)
		}
		out := map[string]string{}
		for _, mf := range mfs {
			if len(mf.GetMetric()) > 0 {
				out[mf.GetName()] = strings.ToLower(mf.GetType().String())
			}
		}
		return out, nil
	}
	// What the traffic should make show: id 1 converges, id 2 is malformed,
	// id 3 never reaches the target, so its window expires into a missing
	// divergence, an auto repair and published output records.
	want := []string{"recon_dlq_records_total", "recon_decode_errors_total", "recon_convergence_lag_seconds",
		"recon_detection_delay_seconds", "recon_divergences_opened_total", "recon_repairs_total",
		"recon_published_records_total", "recon_consumer_lag_records", "recon_watermark_age_seconds"}
	var pending []string
	err = poll(20*time.Second, "series from the test traffic", func() bool {
		pending = pending[:0]
		for _, n := range want {
			if !hasSeries(p, n) {
				pending = append(pending, n)
			}
		}
		return len(pending) == 0
	})
	if err != nil {
		err = fmt.Errorf("%w; still without a series: %s", err, strings.Join(pending, ", "))
	}
	exported, gerr := gather()
	if gerr != nil {
		return fail(gerr)
	}
	// A timeout is not fatal here: the tests report by name whatever is
	// missing, which says more than the timeout would.
	note := err
	if err := stop(); err != nil {
		return running{err: fmt.Errorf("pipeline run: %w", err)}
	}
	return running{exported: exported, note: note}
}

// hasSeries reports whether name has a series at all. Counters and
// histograms must also have counted something: their zero series are
// pre-created from the config.
func hasSeries(p *pipeline.Pipeline, name string) bool {
	mfs, err := p.Registry().Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil, m.GetCounter().GetValue() > 0, m.GetHistogram().GetSampleCount() > 0:
				return true
			}
		}
	}
	return false
}

func digestKeyEnv(name string) (string, bool) {
	if name == "RECON_DIGEST_KEY" {
		return "deploy-test-digest-key-0123456789", true
	}
	return "", false
}

// poll calls cond every 10ms until it holds or d passes.
func poll(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
	return nil
}

func TestDocumentedMetricsAreExported(t *testing.T) {
	documented := documentedMetrics(t)
	exported := exportedMetrics(t)
	if runResult.note != nil {
		t.Errorf("the test traffic did not show: %v", runResult.note)
	}
	var missing, wrongType []string
	for name, typ := range documented {
		got, ok := exported[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case got != typ:
			wrongType = append(wrongType, fmt.Sprintf("%s: documented %s, exported %s", name, typ, got))
		}
	}
	slices.Sort(missing)
	slices.Sort(wrongType)
	if len(missing) > 0 {
		t.Errorf("documented in README.md's Metrics table but not exported by a running recon:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(wrongType) > 0 {
		t.Errorf("metric types differ from README.md:\n  %s", strings.Join(wrongType, "\n  "))
	}
}

func TestDashboardReferencesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	known := map[string]bool{}
	for n := range exported {
		known[n] = true
	}
	used := namesIn(dashboardExprs(t), known)
	if len(used) == 0 {
		t.Fatal("the dashboard uses no recon_* metric")
	}
	for _, n := range sortedKeys(used) {
		if !known[n] {
			t.Errorf("grafana/recon.json uses %s, which a running recon does not export", n)
		}
	}
}

func TestReadmeDashboardAndRulesAgree(t *testing.T) {
	documented := documentedMetrics(t)
	known := map[string]bool{}
	for n := range documented {
		known[n] = true
	}
	for _, src := range []struct {
		what  string
		exprs []string
	}{
		{"grafana/recon.json", dashboardExprs(t)},
		{"prometheus/*.yaml", rulesExprs(t)},
	} {
		for _, n := range sortedKeys(namesIn(src.exprs, known)) {
			if !known[n] {
				t.Errorf("%s uses %s, which README.md's Metrics table does not document", src.what, n)
			}
		}
	}
	// The dashboard shows everything the README documents.
	shown := namesIn(dashboardExprs(t), known)
	for _, n := range sortedKeys(known) {
		if !shown[n] {
			t.Errorf("README.md documents %s but the dashboard has no panel for it", n)
		}
	}
}

// yamlDocs decodes every document of a YAML file into nodes.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, &n)
	}
	return docs
}
