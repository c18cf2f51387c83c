// Command recon reconciles CDC streams of a source and its targets on Kafka.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one `recon <name>` subcommand. It returns an error whose text is the
// one line printed before a non-zero exit; errExitSilently exits 1 without one.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var errExitSilently = errors.New("exit 1")

func commands() map[string]command {
	return map[string]command{
		"broker":           {"run an embedded Kafka-protocol broker for development", cmdBroker},
		"run":              {"run recon: recon run -c recon.yaml", cmdRun},
		"config validate":  {"check a config file: recon config validate -c recon.yaml", cmdConfigValidate},
		"demo":             {"run recon against a simulated source and replica, with a report", cmdDemo},
		"bench":            {"measure recon's full rate against the raw consume rate", cmdBench},
		"audit verify":     {"check the audit log's hash chain: recon audit verify --state-dir DIR | --server URL", cmdAuditVerify},
		"audit list":       {"list a running recon's audit records: recon audit list [--since SEQ] [--limit N]", cmdAuditList},
		"divergences list": {"list divergences: recon divergences list [--dataset D] [--target T] [--kind K] [--state open|resolved]", cmdDivergencesList},
		"keys inspect":     {"explain a key: recon keys inspect DATASET KEY", cmdKeysInspect},
		"repairs list":     {"list repairs: recon repairs list [--state pending|published|...]", cmdRepairsList},
		"repairs show":     {"show one repair and its event: recon repairs show ID", cmdRepairsShow},
		"repairs approve":  {"approve a pending repair: recon repairs approve ID", cmdRepairsDecide("approve")},
		"repairs reject":   {"reject a pending repair: recon repairs reject ID [--reason TEXT]", cmdRepairsDecide("reject")},
		"repairs revert":   {"revert a published repair: recon repairs revert ID", cmdRepairsDecide("revert")},
		"version":          {"print recon's version", cmdVersion},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintf(stdout, "recon %s\n", version)
	return nil
}

func main() {
	// recon allocates a little per event and keeps its working set (the key
	// state cache) bounded, so it trades some heap for far fewer GC cycles.
	// GOGC in the environment still wins.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		return 2
	}
	name, rest := args[0], args[1:]
	// Two-word commands: `recon config validate`, `recon repairs list`, ...
	if len(rest) > 0 {
		if _, ok := cmds[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	c, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "recon: unknown command %q (try recon help)\n", name)
		return 2
	}
	if err := c.run(ctx, rest, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		if !errors.Is(err, errExitSilently) {
			fmt.Fprintf(stderr, "recon %s: %v\n", name, err)
		}
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: recon <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, cmds[n].summary)
	}
}
