package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/recon-dev/recon/broker"
)

func cmdBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recon broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to listen on; port 0 picks a free port")
	dataDir := fs.String("data-dir", "", "directory keeping topics, records and group offsets across restarts (default: in memory)")
	partitions := fs.Int("partitions", 1, "partitions of topics created on first use")
	saslMech := fs.String("sasl-mechanism", "", "require SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	saslUser := fs.String("sasl-user", "", "the one SASL user, a superuser")
	saslPass := fs.String("sasl-password", "", "its password (default: $"+brokerPasswordEnv+")")
	tlsCert := fs.String("tls-cert", "", "PEM server certificate; serves TLS only (default: plaintext)")
	tlsKey := fs.String("tls-key", "", "PEM key of --tls-cert")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM CAs that must have signed every client's certificate (default: no client certificates)")
	registry := fs.String("schema-registry", "", "host:port to serve an in-memory schema registry on, over plain HTTP; it keeps nothing across restarts, even with --data-dir (default: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *partitions < 1 {
		return errors.New("--partitions must be at least 1")
	}
	if *saslPass == "" {
		*saslPass = os.Getenv(brokerPasswordEnv)
	}
	sasl := broker.SASL{Mechanism: *saslMech, User: *saslUser, Password: *saslPass}
	tlsOpts := broker.TLS{CertFile: *tlsCert, KeyFile: *tlsKey, ClientCAFile: *tlsClientCA}
	if err := checkBrokerSecurity(sasl, tlsOpts); err != nil {
		return err
	}

	b, err := broker.Start(broker.Options{Listen: *listen, DataDir: *dataDir, Partitions: *partitions, SASL: sasl, TLS: tlsOpts,
		SchemaRegistry: *registry})
	if err != nil {
		return err
	}
	if url := b.SchemaRegistryURL(); url != "" {
		// Before the broker's line, which scripts wait for: both are up then.
		fmt.Fprintf(stdout, "schema registry listening on %s\n", url)
	}
	where := "in memory"
	if *dataDir != "" {
		where = "data dir " + *dataDir
	}
	if sasl.Mechanism != "" {
		where += ", sasl " + sasl.Mechanism
	}
	switch {
	case tlsOpts.ClientCAFile != "":
		where += ", tls with client certificates"
	case tlsOpts.Enabled():
		where += ", tls"
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

// brokerPasswordEnv keeps the SASL password out of the process list.
const brokerPasswordEnv = "RECON_BROKER_SASL_PASSWORD"

// checkBrokerSecurity reports a bad flag combination by its flags' names;
// broker.Start would report it by its option names.
func checkBrokerSecurity(s broker.SASL, t broker.TLS) error {
	switch s.Mechanism {
	case "":
		if s.User != "" || s.Password != "" {
			return errors.New("--sasl-user and --sasl-password need --sasl-mechanism")
		}
	case broker.SASLPlain, broker.SASLScramSHA256, broker.SASLScramSHA512:
		if s.User == "" || s.Password == "" {
			return fmt.Errorf("--sasl-mechanism %s needs --sasl-user and --sasl-password (or $%s)", s.Mechanism, brokerPasswordEnv)
		}
	default:
		return fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	return nil
}
