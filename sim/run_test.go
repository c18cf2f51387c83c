package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestDemoSmall runs the whole demo small and fast: every kind of fault is
// injected, and recon must flag each one, raise nothing else, and repair the
// replica back to the source. Run stops everything it started.
func TestDemoSmall(t *testing.T) { testDemoSmall(t, FormatJSON) }

// TestDemoSmallAvro is the same run with a Debezium Avro source (schemas in
// the embedded broker's registry), a flat JSON replica and Avro events, read
// back by the observer and the repair consumer through the registry.
func TestDemoSmallAvro(t *testing.T) { testDemoSmall(t, FormatAvro) }

func testDemoSmall(t *testing.T, format string) {
	if testing.Short() {
		t.Skip("runs a broker and recon for several seconds")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var progress bytes.Buffer
	rep, err := Run(t.Context(), Options{
		Keys: 100, Rate: 200, Duration: 3 * time.Second, Window: time.Second, Seed: 7, Format: format,
		Faults: &Faults{Missing: 0.03, Lagging: 0.02, Conflict: 0.02, Orphan: 0.05},
		Noise:  0.05, ForceEachKind: true, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	if !rep.OK() || !rep.Settled {
		t.Errorf("the demo failed (settled %v):%s", rep.Settled, out.String())
	}
	for _, k := range rep.Kinds {
		if k.Injected == 0 {
			t.Errorf("no %s fault was injected", k.Kind)
		}
	}
	if rep.Repairs.Applied == 0 || rep.SourceChanges() < 500 || rep.NoiseDupTarget == 0 || rep.NoiseRedelivered == 0 {
		t.Errorf("the run did too little:%s", out.String())
	}
	if lines := strings.Count(progress.String(), "\nt="); lines < 2 || !strings.Contains(progress.String(), "\nt=1s ") {
		t.Errorf("progress lines:\n%s", progress.String())
	}
}
