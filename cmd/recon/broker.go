package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/recon-dev/recon/broker"
)

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to listen on; port 0 picks a free port")
	dataDir := fs.String("data-dir", "", "directory keeping topics, records and group offsets across restarts (default: in memory)")
	partitions := fs.Int("partitions", 1, "partitions of topics created on first use")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *partitions < 1 {
		return errors.New("--partitions must be at least 1")
	}

	b, err := broker.Start(broker.Options{Listen: *listen, DataDir: *dataDir, Partitions: *partitions})
	if err != nil {
		return err
	}
	where := "in memory"
	if *dataDir != "" {
		where = "data dir " + *dataDir
	}
	// Scripts and tests wait for this line: the port is bound when it prints.
	fmt.Fprintf(stdout, "broker listening on %s (%s)\n", b.Addr(), where)

	<-ctx.Done()
	if err := b.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "broker stopped")
	return nil
}
