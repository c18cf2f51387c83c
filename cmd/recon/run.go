package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/recon-dev/recon/config"
	"github.com/recon-dev/recon/internal/crashpoint"
	"github.com/recon-dev/recon/pipeline"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "recon.yaml", "config file")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return oneLine(err)
	}
	// Fault injection for the crash tests; a no-op unless RECON_CRASH_AT is set.
	if err := crashpoint.FromEnv(); err != nil {
		return err
	}
	p, err := pipeline.New(ctx, cfg, pipeline.Options{Logger: logger})
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

func cmdConfigValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "recon.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := config.Load(*path); err != nil {
		// Every problem on its own line, then a non-zero exit.
		fmt.Fprintln(stderr, err)
		return errExitSilently
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

// oneLine joins a multi-problem error into one line for a start-up failure.
func oneLine(err error) error {
	msg := err.Error()
	out := make([]byte, 0, len(msg))
	for i := 0; i < len(msg); i++ {
		if msg[i] == '\n' {
			out = append(out, ';', ' ')
			continue
		}
		out = append(out, msg[i])
	}
	return fmt.Errorf("%s", out)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
