package sim

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/internal/crashpoint"
	"github.com/recon-dev/recon/pipeline"
)

// childEnv makes the test binary a recon process: TestChaos re-executes
// itself with the config file's path in it, so that recon is an OS process
// it can SIGKILL, built with the same flags (-race) as the test.
const childEnv = "RECON_SIM_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// runChild is `recon run -c path`, minus the command line.
func runChild(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := crashpoint.FromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := pipeline.New(ctx, cfg, pipeline.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// lockedBuffer collects the children's logs, written from exec's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestChaos kills recon with SIGKILL at least 20 times during a demo run
// (RECON_CHAOS_KILLS for more: `make chaos`): from outside at random
// moments, and from inside at the crash points (mid-batch, between the
// Badger sync and the Kafka commit, between an outbox chunk's ack and its
// delete, in a rebalance). Each time it restarts recon on the same state
// dir against the same broker, then stops the last one with SIGTERM. Against
// the simulator's ground truth: every injected divergence reported under one
// id (redeliveries of that id allowed), none lost, no false positive, every
// repair read and applied once, the replica converged.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts recon for a minute")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	kills := 20
	if s := os.Getenv("RECON_CHAOS_KILLS"); s != "" {
		var err error
		if kills, err = strconv.Atoi(s); err != nil {
			t.Fatalf("RECON_CHAOS_KILLS=%q: %v", s, err)
		}
	}
	// make test runs the JSON pipeline; RECON_CHAOS_FORMAT=avro kills the
	// Avro one (schema registry, Avro outputs) the same way.
	format := FormatJSON
	if s := os.Getenv("RECON_CHAOS_FORMAT"); s != "" {
		format = s
	}
	var logs lockedBuffer
	var progress bytes.Buffer
	rep, err := Run(t.Context(), Options{
		Format: format,
		Keys:   200, Rate: 100, Duration: 10 * time.Second, Window: time.Second, Seed: 11,
		Faults: &Faults{Missing: 0.03, Lagging: 0.02, Conflict: 0.02, Orphan: 0.05},
		Noise:  0.02, ForceEachKind: true, Progress: &progress,
		Chaos: &Chaos{Kills: kills, Stderr: &logs, Command: func(path string) *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+path)
			return cmd
		}},
	})
	if err != nil {
		t.Fatalf("%v\nrecon's logs:\n%s", err, logs.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log(out.String())
	if !rep.ChaosOK() {
		t.Errorf("the chaos run failed:%s\nprogress:\n%s\nrecon's logs:\n%s", out.String(), progress.String(), logs.String())
	}
	if rep.Chaos.SelfKills == 0 || rep.Chaos.SelfKills == rep.Chaos.Kills {
		t.Errorf("%d of %d kills at crash points: want some from each side", rep.Chaos.SelfKills, rep.Chaos.Kills)
	}
}
