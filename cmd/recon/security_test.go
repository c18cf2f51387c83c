package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/recon-dev/recon/broker"
)

// A wrong SASL password stops recon run at start with one line.
func TestRunWrongPasswordOneLine(t *testing.T) {
	t.Setenv("TEST_DIGEST_KEY", "cmd-test-digest-key-0123456789")
	b, err := broker.Start(broker.Options{SASL: broker.SASL{Mechanism: broker.SASLScramSHA256, User: "recon", Password: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := writeConfig(t, b.Addr(), "127.0.0.1:0", "")
	cfg = withSASL(t, cfg, b.Addr(), "SCRAM-SHA-256", "recon", "wrong")

	errb := newSyncBuffer()
	if c := run(context.Background(), []string{"run", "-c", cfg}, io.Discard, errb); c != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", c, errb)
	}
	got := errb.String()
	if !strings.HasPrefix(got, "recon run: ") || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("stderr %q, want exactly one line starting \"recon run: \"", got)
	}
	if !strings.Contains(got, "authentication") {
		t.Errorf("stderr %q does not say authentication failed", got)
	}
}

// recon broker with SASL flags accepts a client with those credentials only.
func TestBrokerCommandSASL(t *testing.T) {
	addr, where, _, _, _, _ := startBrokerCmd(t, "--sasl-mechanism", "SCRAM-SHA-256",
		"--sasl-user", "u", "--sasl-password", "p", "--listen", "127.0.0.1:0")
	if where != "in memory, sasl SCRAM-SHA-256" {
		t.Errorf("listening line says (%s), want (in memory, sasl SCRAM-SHA-256)", where)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(),
		kgo.SASL(scram.Auth{User: "u", Pass: "p"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce with the right credentials: %v", err)
	}

	bad, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.SASL(scram.Auth{User: "u", Pass: "nope"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(ctx); err == nil {
		t.Fatal("ping with a wrong password succeeded")
	}
}

func TestBrokerCommandSecurityErrors(t *testing.T) {
	t.Setenv(brokerPasswordEnv, "")
	for _, tc := range []struct {
		name string
		args []string
		want string // the one stderr line
	}{
		{"unknown mechanism", []string{"--sasl-mechanism", "GSSAPI", "--sasl-user", "u", "--sasl-password", "p"},
			`recon broker: --sasl-mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"no password", []string{"--sasl-mechanism", "PLAIN", "--sasl-user", "u"},
			"recon broker: --sasl-mechanism PLAIN needs --sasl-user and --sasl-password (or $RECON_BROKER_SASL_PASSWORD)"},
		{"user without mechanism", []string{"--sasl-user", "u"},
			"recon broker: --sasl-user and --sasl-password need --sasl-mechanism"},
		{"cert without key", []string{"--tls-cert", "server.crt"},
			"recon broker: --tls-cert and --tls-key go together"},
		{"client CA without cert", []string{"--tls-client-ca", "ca.crt"},
			"recon broker: --tls-client-ca needs --tls-cert and --tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errb := newSyncBuffer(), newSyncBuffer()
			code := run(t.Context(), append([]string{"broker", "--listen", "127.0.0.1:0"}, tc.args...), out, errb)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if got := errb.String(); got != tc.want+"\n" {
				t.Errorf("stderr = %q, want the one line %q", got, tc.want)
			}
		})
	}
}

// The password may come from the environment instead of the flag.
func TestBrokerCommandPasswordFromEnv(t *testing.T) {
	t.Setenv(brokerPasswordEnv, "from-env")
	addr, _, _, _, _, _ := startBrokerCmd(t, "--sasl-mechanism", "PLAIN", "--sasl-user", "u", "--listen", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.SASL(plain.Auth{User: "u", Pass: "from-env"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("ping with the password from $%s: %v", brokerPasswordEnv, err)
	}
}

// withSASL adds a sasl section to the kafka line of the config at path.
func withSASL(t *testing.T, path, addr, mech, user, pass string) string {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := "kafka: {brokers: [" + addr + "], group: recon-cmd-test}"
	if !strings.Contains(string(text), old) {
		t.Fatalf("config has no line %q", old)
	}
	sasl := fmt.Sprintf("kafka: {brokers: [%s], group: recon-cmd-test, sasl: {mechanism: %s, username: %s, password: %s}}", addr, mech, user, pass)
	if err := os.WriteFile(path, []byte(strings.Replace(string(text), old, sasl, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
