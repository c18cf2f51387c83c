package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/recon-dev/recon/sim"
)

// cmdDemo runs recon's main job with no setup (package sim): an embedded
// broker, a simulated Postgres source, a replica that copies it with faults
// at known rates, a repair consumer, and recon between them. It exits 0 only
// when recon flagged every injected divergence, raised no false positive and
// its repairs made the replica converge.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.Int("keys", 500, "key space of the simulated orders table")
	rate := fs.Float64("rate", 200, "source changes per second")
	duration := fs.Duration("duration", 20*time.Second, "how long the source keeps changing")
	seed := fs.Uint64("seed", 1, "seed of the run's changes, faults and noise")
	window := fs.Duration("window", 2*time.Second, "how long the replica may disagree before recon flags it")
	partitions := fs.Int("partitions", 3, "partitions of every topic")
	format := fs.String("format", sim.FormatJSON, "json: Debezium JSON in, a Debezium JSON replica, JSON events; "+
		"avro: Debezium Avro in (schemas in the embedded broker's registry), a flat JSON replica, Avro events")
	f := sim.DefaultFaults
	fs.Float64Var(&f.Missing, "missing-rate", f.Missing, "fraction of inserts the replica drops (missing)")
	fs.Float64Var(&f.Lagging, "lagging-rate", f.Lagging, "fraction of updates the replica drops (lagging)")
	fs.Float64Var(&f.Conflict, "conflict-rate", f.Conflict, "fraction of updates whose amount the replica corrupts (conflict)")
	fs.Float64Var(&f.Orphan, "orphan-rate", f.Orphan, "fraction of deletes the replica drops (orphan)")
	noise := fs.Float64("noise-rate", 0.02, "fraction of changes given each kind of harmless noise (0 for none)")
	chaos := fs.Bool("chaos", false, "run recon as a child process (recon run) and kill it with SIGKILL --kills times at random moments, "+
		"restarting it on the same state dir; the report adds kills survived, duplicates and losses")
	kills := fs.Int("kills", 20, "with --chaos: how many SIGKILLs recon must survive")
	crashAt := fs.String("crash-at", sim.DefaultCrashAt, "with --chaos: the children's RECON_CRASH_AT, crash points and their probabilities (none for none)")
	retention := fs.Duration("retention", time.Minute, "how long the embedded broker keeps input records (0: for ever); it shares the demo's memory")
	// recon's own logs go to stderr at warn, so that the progress lines on
	// stdout stay readable.
	logFormat := fs.String("log-format", "text", "format of recon's logs on stderr: json or text")
	logLevel := fs.String("log-level", "warn", "level of recon's logs: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if *noise == 0 {
		*noise = -1 // sim reads 0 as "the default"
	}
	opts := sim.Options{
		Keys: *keys, Rate: *rate, Duration: *duration, Window: *window, Seed: *seed, Partitions: *partitions, Format: *format,
		Faults: &f, Noise: *noise, ForceEachKind: true, Progress: stdout, Logger: logger,
		Retention: *retention,
	}
	if *retention == 0 {
		opts.Retention = -1 // sim reads 0 as "the default"
	}
	if *chaos {
		if *kills < 1 { // sim reads 0 as "the default"
			return fmt.Errorf("--kills %d: want at least 1", *kills)
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--chaos runs this binary as recon run: %w", err)
		}
		opts.Chaos = &sim.Chaos{Kills: *kills, CrashAt: *crashAt, Stderr: stderr, Command: func(path string) *exec.Cmd {
			return exec.Command(exe, "run", "-c", path, "--log-format", *logFormat, "--log-level", *logLevel)
		}}
	}
	rep, err := sim.Run(ctx, opts)
	if rep != nil {
		rep.Print(stdout)
	}
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return errors.New("interrupted")
	case err != nil:
		return err
	case *chaos && !rep.ChaosOK(), !*chaos && !rep.OK():
		return errExitSilently
	}
	return nil
}
