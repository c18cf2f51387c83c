package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile      = "prometheus/recon-rules.yaml"
	rulesTestFile  = "prometheus/recon-rules.test.yaml"
	rulesRunbooks  = "runbooks"
	rulesURLMarker = "deploy/runbooks/"
)

// TestPrometheusRules runs promtool over the rules and their unit tests. Without promtool
// on PATH it skips, unless RECON_REQUIRE_PROMTOOL=1 says CI must not skip it.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("RECON_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is required (RECON_REQUIRE_PROMTOOL=1) but not on PATH: %v", err)
		}
		t.Skipf("promtool not on PATH (set RECON_REQUIRE_PROMTOOL=1 to fail instead): %v", err)
	}
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// rulesFileDoc is the part of a Prometheus rule file this test checks.
type rulesFileDoc struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	rulesMetricRef    = regexp.MustCompile(`\brecon_[A-Za-z0-9_]+`)
	rulesRecordingRef = regexp.MustCompile(`\brecon:[A-Za-z0-9_:]+`)
)

// TestRulesShape keeps the rules honest against the runbooks and the metrics recon
// exports: every alert has a severity, a summary and a runbook that exists, and every
// recon_* name in an expression is in the README's Metrics table.
func TestRulesShape(t *testing.T) {
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc rulesFileDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing %s: %v", rulesFile, err)
	}
	metrics, err := readmeMetrics(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}

	recorded := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}

	alerts := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			for _, ref := range rulesMetricRef.FindAllString(r.Expr, -1) {
				if !rulesKnownMetric(metrics, ref) {
					t.Errorf("%s: expression uses %s, which is not in the README Metrics table", name, ref)
				}
			}
			for _, ref := range rulesRecordingRef.FindAllString(r.Expr, -1) {
				if !recorded[ref] {
					t.Errorf("%s: expression uses %s, which no recording rule defines", name, ref)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts++
			switch sev := r.Labels["severity"]; sev {
			case "page", "ticket":
			default:
				t.Errorf("%s: labels.severity is %q, want page or ticket", r.Alert, sev)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotations.%s is empty", r.Alert, a)
				}
			}
			url := r.Annotations["runbook_url"]
			i := strings.LastIndex(url, rulesURLMarker)
			if i < 0 {
				t.Errorf("%s: runbook_url %q does not point under %s", r.Alert, url, rulesURLMarker)
				continue
			}
			file := url[i+len(rulesURLMarker):]
			if want := rulesKebab(r.Alert) + ".md"; file != want {
				t.Errorf("%s: runbook_url names %s, want %s", r.Alert, file, want)
			}
			if _, err := os.Stat(filepath.Join(rulesRunbooks, file)); err != nil {
				t.Errorf("%s: runbook: %v", r.Alert, err)
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s defines no alerts", rulesFile)
	}
}

// rulesKnownMetric reports whether ref is an exported metric or a series of an exported
// histogram.
func rulesKnownMetric(metrics map[string]string, ref string) bool {
	if _, ok := metrics[ref]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(ref, suffix); ok && metrics[base] == "histogram" {
			return true
		}
	}
	return false
}

// rulesKebab turns an alert name into its runbook's base name: ReconDLQRate becomes
// recon-dlq-rate.
func rulesKebab(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prevLower := unicode.IsLower(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func TestRulesKebab(t *testing.T) {
	for in, want := range map[string]string{
		"ReconDLQRate":                 "recon-dlq-rate",
		"ReconBreakerOpen":             "recon-breaker-open",
		"ReconDivergenceRateAnomalous": "recon-divergence-rate-anomalous",
		"ReconAbsent":                  "recon-absent",
	} {
		if got := rulesKebab(in); got != want {
			t.Errorf("rulesKebab(%q) = %q, want %q", in, got, want)
		}
	}
}

var rulesReadmeName = regexp.MustCompile("`(recon_[A-Za-z0-9_]+)`")

// readmeMetrics reads the "## Metrics" table of recon's README and returns each
// metric name it lists with its type (counter, gauge, histogram). A row may list several
// names, as in | `recon_outbox_records`, `recon_outbox_bytes` | gauge | ... |.
func readmeMetrics(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	metrics := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			in = line == "## Metrics"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			return nil, fmt.Errorf("%s: malformed metrics row %q", path, line)
		}
		typ := strings.TrimSpace(cells[2])
		for _, m := range rulesReadmeName.FindAllStringSubmatch(cells[1], -1) {
			metrics[m[1]] = typ
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(metrics) == 0 {
		return nil, errors.New(path + ": no metrics table under \"## Metrics\"")
	}
	return metrics, nil
}

func TestReadmeMetrics(t *testing.T) {
	metrics, err := readmeMetrics(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{
		"recon_events_consumed_total":   "counter",
		"recon_outbox_records":          "gauge",
		"recon_outbox_bytes":            "gauge",
		"recon_convergence_lag_seconds": "histogram",
	} {
		if metrics[name] != typ {
			t.Errorf("%s: type %q, want %q", name, metrics[name], typ)
		}
	}
}
