// Package crashpoint is fault injection for crash tests, and nothing else.
//
// The crash tests (`recon demo --chaos`, sim's chaos test) kill recon with
// SIGKILL from outside at random times, and also ask it to kill itself at the
// moments a timer rarely hits: half way through folding a poll, between the
// Badger sync of a checkpoint and the Kafka commit of its offsets, between a
// chunk's acknowledgement and its deletion from the outbox, and while a
// rebalance hands partitions over. Each such moment calls Hit with its name.
//
// Nothing happens unless the process was started with RECON_CRASH_AT, e.g.
//
//	RECON_CRASH_AT=after-sync=0.05,mid-batch=0.02,outbox-drain=0.1,rebalance=0.2
//	RECON_CRASH_SEED=7
//
// naming points and the probability that passing one kills the process.
// Without it Hit is one atomic load. Never set it in production.
package crashpoint

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Points recon passes, named as RECON_CRASH_AT names them.
const (
	MidBatch    = "mid-batch"    // half way through folding one poll
	AfterSync   = "after-sync"   // a checkpoint is synced to Badger, its offsets not yet committed to Kafka
	OutboxDrain = "outbox-drain" // a chunk was acknowledged by Kafka, not yet deleted from the outbox
	Rebalance   = "rebalance"    // partitions were just assigned or revoked
)

// EnvPoints and EnvSeed are the variables Configure's callers read.
const (
	EnvPoints = "RECON_CRASH_AT"
	EnvSeed   = "RECON_CRASH_SEED"
)

type armed struct {
	mu    sync.Mutex
	rng   *rand.Rand
	prob  map[string]float64
	kills func()
}

var current atomic.Pointer[armed]

// FromEnv arms the points RECON_CRASH_AT names, with RECON_CRASH_SEED (default
// the process id) seeding the draws. It is a no-op when RECON_CRASH_AT is unset.
func FromEnv() error {
	spec := os.Getenv(EnvPoints)
	if spec == "" {
		return nil
	}
	seed := uint64(os.Getpid())
	if s := os.Getenv(EnvSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			return fmt.Errorf("%s %q: want an unsigned integer", EnvSeed, s)
		}
	}
	return configure(spec, seed, killSelf)
}

// Validate checks a RECON_CRASH_AT value without arming anything.
func Validate(spec string) error {
	_, err := parse(spec)
	return err
}

// configure parses spec and arms its points; kill is what a hit does
// (tests replace SIGKILL).
func configure(spec string, seed uint64, kill func()) error {
	prob, err := parse(spec)
	if err != nil {
		return err
	}
	current.Store(&armed{rng: rand.New(rand.NewPCG(seed, 0x5eed)), prob: prob, kills: kill})
	return nil
}

// parse reads spec, "name=probability,...".
func parse(spec string) (map[string]float64, error) {
	prob := make(map[string]float64)
	for _, part := range strings.Split(spec, ",") {
		name, ps, ok := strings.Cut(strings.TrimSpace(part), "=")
		p, err := strconv.ParseFloat(ps, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("%s: %q: want name=probability with a probability from 0 to 1", EnvPoints, part)
		}
		switch name {
		case MidBatch, AfterSync, OutboxDrain, Rebalance:
		default:
			return nil, fmt.Errorf("%s: unknown point %q: want %s, %s, %s or %s", EnvPoints, name, MidBatch, AfterSync, OutboxDrain, Rebalance)
		}
		prob[name] = p
	}
	return prob, nil
}

// Hit passes the named point: when armed, it kills the process with the
// point's probability.
func Hit(name string) {
	a := current.Load()
	if a == nil {
		return
	}
	a.mu.Lock()
	p, ok := a.prob[name]
	hit := ok && a.rng.Float64() < p
	a.mu.Unlock()
	if hit {
		// sim's chaos supervisor reads this line to count kills by point.
		fmt.Fprintf(os.Stderr, "crashpoint: killing recon at %s\n", name)
		a.kills()
	}
}

// killSelf sends SIGKILL (os.Kill on Unix) to this process: no deferred
// function, no flush, no Badger close runs, as when the machine dies.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Signal(os.Kill)
	}
	select {} // the signal is asynchronous; nothing after Hit may run
}
