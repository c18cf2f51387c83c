package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/internal/crashpoint"
)

// DefaultCrashAt is what the children ask of crashpoint while kills remain:
// each kills itself now and then at the moments a timer rarely hits.
const DefaultCrashAt = "mid-batch=0.003,after-sync=0.003,outbox-drain=0.05,rebalance=0.05"

// Chaos runs recon as a child process, `recon run` on the demo's config
// file, and kills it with SIGKILL again and again on the same state dir
// while the broker, in this process, lives on.
type Chaos struct {
	// Kills is how many SIGKILLs recon must survive (default 20). Once they
	// are done the last child runs to the end and is stopped with SIGTERM.
	Kills int
	// Command returns the command that runs one recon on the config file
	// at path, as `recon run -c path` does. Required.
	Command func(path string) *exec.Cmd
	// CrashAt is the children's RECON_CRASH_AT while kills remain (default
	// DefaultCrashAt; "none" for none): the self-inflicted kills count too.
	CrashAt string
	// MinUp and MaxUp bound how long a child runs before this process kills
	// it, drawn at random from the run's seed (defaults 300ms and 1.5s).
	MinUp, MaxUp time.Duration
	// Stderr receives the children's logs (nil discards them).
	Stderr io.Writer
}

func (c *Chaos) setDefaults() {
	if c.Kills == 0 {
		c.Kills = 20
	}
	if c.CrashAt == "" {
		c.CrashAt = DefaultCrashAt
	}
	if c.MinUp == 0 {
		c.MinUp = 300 * time.Millisecond
	}
	if c.MaxUp == 0 {
		c.MaxUp = 1500 * time.Millisecond
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
}

func (c *Chaos) validate() error {
	switch {
	case c.Command == nil:
		return errors.New("chaos: a command to start recon is required")
	case c.Kills < 1:
		return fmt.Errorf("chaos: kills %d: want at least 1", c.Kills)
	case c.MinUp <= 0 || c.MaxUp < c.MinUp:
		return fmt.Errorf("chaos: up time from %s to %s: want 0 < min <= max", c.MinUp, c.MaxUp)
	}
	if c.CrashAt != "none" {
		if err := crashpoint.Validate(c.CrashAt); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
	}
	return nil
}

// ChaosCounts is what the supervisor did.
type ChaosCounts struct {
	Requested int // kills asked for
	Kills     int // SIGKILLs recon survived: sent by the supervisor or by a crash point
	SelfKills int // of which recon sent itself at a crash point
	// ByPoint counts the self-inflicted kills by crash point.
	ByPoint map[string]int
	Starts  int // processes started
}

// supervisor starts, kills and restarts recon. Run owns it: run's goroutine
// is the only one touching the process, and it ends when ctx does, after a
// SIGTERM and the child's exit.
type supervisor struct {
	opts    Chaos
	cfgPath string
	addr    string // the children's HTTP listener
	rng     *rand.Rand
	seed    uint64
	http    *http.Client

	mu     sync.Mutex
	counts ChaosCounts
	done   atomic.Bool // the kills are over: the current child lives to the end
}

// freeAddr picks a loopback port for the children's HTTP listener: every
// restart serves on the same address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func newSupervisor(opts Chaos, cfgPath, addr string, seed uint64) *supervisor {
	return &supervisor{opts: opts, cfgPath: cfgPath, addr: addr, seed: seed,
		rng:    rand.New(rand.NewPCG(seed, 0xc4a05)),
		http:   &http.Client{Timeout: 2 * time.Second},
		counts: ChaosCounts{Requested: opts.Kills, ByPoint: make(map[string]int)}}
}

// run keeps one recon running until ctx ends, killing it at random moments
// until the kills are done; then it stops the last one with SIGTERM, which
// must exit 0.
func (s *supervisor) run(ctx context.Context) error {
	for {
		s.mu.Lock()
		armed := s.counts.Kills < s.opts.Kills
		s.counts.Starts++
		n := s.counts.Starts
		s.mu.Unlock()
		cmd := s.opts.Command(s.cfgPath)
		// exec copies the child's stderr through the scanner and Wait
		// waits for the copy: the point is known once the child is gone.
		points := &pointScanner{}
		cmd.Stdout, cmd.Stderr = s.opts.Stderr, io.MultiWriter(s.opts.Stderr, points)
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		if armed && s.opts.CrashAt != "none" {
			cmd.Env = append(cmd.Env, crashpoint.EnvPoints+"="+s.opts.CrashAt,
				crashpoint.EnvSeed+"="+strconv.FormatUint(s.seed+uint64(n), 10))
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting recon (start %d): %w", n, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		killAt := time.NewTimer(s.opts.MinUp + time.Duration(s.rng.Int64N(int64(s.opts.MaxUp-s.opts.MinUp)+1)))
		if !armed {
			killAt.Stop()
			s.done.Store(true)
		}
		select {
		case <-ctx.Done():
			killAt.Stop()
			return s.terminate(cmd, exited)
		case <-killAt.C:
			cmd.Process.Kill() // SIGKILL
			if err := <-exited; !killed(err) {
				return fmt.Errorf("recon (start %d) exited before the SIGKILL: %w", n, err)
			}
			s.count(points.last) // a crash point may have come first
		case err := <-exited:
			killAt.Stop()
			if !killed(err) {
				return fmt.Errorf("recon (start %d) exited on its own: %w", n, err)
			}
			s.count(points.last)
		}
	}
}

// count counts a kill, at the crash point the child named, if any.
func (s *supervisor) count(point string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts.Kills++
	if point != "" {
		s.counts.SelfKills++
		s.counts.ByPoint[point]++
	}
}

// terminate stops the last child the way an orchestrator does: SIGTERM,
// then SIGKILL if it does not exit within a minute. A graceful stop must
// exit 0.
func (s *supervisor) terminate(cmd *exec.Cmd, exited <-chan error) error {
	cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("recon stopped by SIGTERM: %w", err)
		}
		return nil
	case <-t.C:
		cmd.Process.Kill()
		<-exited
		return errors.New("recon did not exit within a minute of SIGTERM")
	}
}

// killed reports whether a child's exit was a SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func (s *supervisor) snapshot() ChaosCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.ByPoint = maps.Clone(c.ByPoint)
	return c
}

// crashLine is what crashpoint writes before the kill.
const crashLine = "crashpoint: killing recon at "

// pointScanner remembers the last crash point a child named on stderr.
type pointScanner struct {
	line []byte
	last string
}

func (p *pointScanner) Write(b []byte) (int, error) {
	for _, c := range b {
		if c != '\n' {
			if len(p.line) < 256 { // only short lines matter
				p.line = append(p.line, c)
			}
			continue
		}
		if name, ok := strings.CutPrefix(string(p.line), crashLine); ok {
			p.last = name
		}
		p.line = p.line[:0]
	}
	return len(b), nil
}

// get fetches path from the current child.
func (s *supervisor) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// ready reports whether a child is up and joined to its group.
func (s *supervisor) ready(ctx context.Context) func() bool {
	return func() bool {
		code, _, err := s.get(ctx, "/readyz")
		return err == nil && code == http.StatusOK
	}
}

// quiet is reconQuiet for a child: the kills are over, and the last
// child's metrics say its outbox is empty and it has read every partition of
// both inputs to the end. (Kafka's committed offsets would not do: a child
// that resumed from its state store commits only once it reads something
// new, and the source has stopped.)
func (s *supervisor) quiet(ctx context.Context, partitions int) (bool, error) {
	if !s.done.Load() {
		return false, nil
	}
	code, body, err := s.get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		return false, nil // restarting
	}
	if depth, ok := metricValue(body, "recon_outbox_records"); !ok || depth > 0 {
		return false, nil
	}
	read := 0
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, "recon_consumer_lag_records{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		if !strings.Contains(labels, `topic="`+SourceTopic+`"`) && !strings.Contains(labels, `topic="`+TargetTopic+`"`) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil || v > 0 {
			return false, nil
		}
		read++
	}
	return read == 2*partitions, nil
}

// metricValue reads an unlabelled sample from a Prometheus text exposition.
func metricValue(body, name string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// setupChaos writes the children's config file into dir: the demo's, with
// a fixed HTTP address (every restart serves on it), static group membership
// (a restart takes its partitions back at once) and a short shutdown timeout.
func (r *runner) setupChaos(dir string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	text := demoConfigText(r.broker.Addr(), r.broker.SchemaRegistryURL(), filepath.Join(dir, "state"), addr, r.opts.Window, r.opts.Format,
		"shutdown_timeout: 10s\n")
	text = strings.Replace(text, "client_id: recon-demo}", "client_id: recon-demo, instance_id: recon-demo-1}", 1)
	if r.cfg, err = config.Parse([]byte(text), nil); err != nil {
		return err
	}
	path := filepath.Join(dir, "recon.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return fmt.Errorf("writing recon's config: %w", err)
	}
	r.sup = newSupervisor(*r.opts.Chaos, path, addr, r.opts.Seed)
	return nil
}
