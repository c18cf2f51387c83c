package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/recon-dev/recon/bench"
)

// cmdBench measures, on an embedded broker, how fast recon reconciles a
// generated Debezium workload compared with a consumer that only reads it.
// The last line it prints is "ratio: 0.NNN" (full / raw).
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 200_000, "records to produce, source and target topics together")
	keys := fs.Int("keys", 20_000, "distinct keys the changes go round")
	partitions := fs.Int("partitions", 4, "partitions of each input topic")
	dir := fs.String("dir", "", "where the temporary state dir is made (default: the system temp dir); fsync cost depends on its filesystem")
	verbose := fs.Bool("v", false, "log the broker's and recon's info messages to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *records < 2:
		return fmt.Errorf("--records %d: want at least 2", *records)
	case *keys < 1:
		return fmt.Errorf("--keys %d: want at least 1", *keys)
	case *partitions < 1:
		return fmt.Errorf("--partitions %d: want at least 1", *partitions)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	_, err := bench.Run(ctx, bench.Options{
		Records: *records, Keys: *keys, Partitions: *partitions, Dir: *dir,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Out:    stdout,
	})
	return err
}
