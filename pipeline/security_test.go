package pipeline

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/recon-dev/recon/broker"
	"github.com/recon-dev/recon/config"
)

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and
// localhost and a client certificate, all as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "recon test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certPath, keyPath string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		writePEM(t, certPath, "CERTIFICATE", der)
		writePEM(t, keyPath, "PRIVATE KEY", keyDER)
		return certPath, keyPath
	}
	p := testPKI{CA: filepath.Join(dir, "ca.crt")}
	writePEM(t, p.CA, "CERTIFICATE", caDER)
	p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secureConfig is a one-dataset config with no target, so that every source
// row turns into a missing divergence after window.
func secureConfig(t *testing.T, addr, kafkaExtra string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`
kafka: {brokers: [%s], group: recon-secure%s}
state: {dir: %s}
http: {listen: "127.0.0.1:0"}
digest: {key: "test-digest-key-0123456789"}
datasets:
  - name: orders
    key: [id]
    window: 300ms
    source: {name: postgres, topic: %s, format: debezium-json, version: lsn}
    targets:
      - {name: warehouse, topic: %s, format: debezium-json, version: position,
         lineage: "field:_src_lsn", rename: {order_id: id}}
    compare: {ignore: [updated_at, loaded_at], types: {amount: "decimal(2)", created_at: timestamp}}
`, addr, kafkaExtra, t.TempDir(), srcTopic, tgtTopic)
	cfg, err := config.Parse([]byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func saslYAML(mech, user, pass string) string {
	return fmt.Sprintf(", sasl: {mechanism: %s, username: %s, password: %s}", mech, user, pass)
}

func tlsYAML(p testPKI) string {
	return fmt.Sprintf(", tls: {ca_file: %s, cert_file: %s, key_file: %s}", p.CA, p.ClientCert, p.ClientKey)
}

// Recon works end to end against a broker that demands SASL, and TLS with
// client certificates: its clients authenticate, and so does a reader with
// the same credentials.
func TestSecureBroker(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name string
		mech string
		tls  bool
	}{
		{"plain", broker.SASLPlain, false},
		{"scram-sha-256", broker.SASLScramSHA256, false},
		{"scram-sha-512", broker.SASLScramSHA512, false},
		{"tls client certs and scram-sha-512", broker.SASLScramSHA512, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, cfg := startSecure(t, pki, tc.mech, tc.tls, "s3cret")

			kopts, err := kafkaOpts(cfg.Kafka)
			if err != nil {
				t.Fatal(err)
			}
			prod, err := kgo.NewClient(kopts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(prod.Close)
			h := &harness{t: t, broker: b, cfg: cfg, prod: prod}
			h.start()
			h.source("c", 100, row{ID: 1, Amount: "12.50", Status: "new", Created: time.Now()})

			got := waitDivergence(t, kopts, cfg.Outputs.Divergences)
			if got.Headers["recon-kind"] != "missing" || got.Headers["recon-dataset"] != "orders" {
				t.Errorf("divergence headers %v, want a missing one of orders", got.Headers)
			}
		})
	}
}

// waitDivergence reads topic from the start with kopts until its first
// record, or fails after 15s.
func waitDivergence(t *testing.T, kopts []kgo.Opt, topic string) outEvent {
	t.Helper()
	cl, err := kgo.NewClient(append(kopts[:len(kopts):len(kopts)],
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.MetadataMaxAge(200*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no divergence on %s within 15s", topic)
		}
		fs.EachError(func(tp string, p int32, err error) {
			if ctx.Err() == nil {
				t.Fatalf("fetch %s/%d: %v", tp, p, err)
			}
		})
		var ev *outEvent
		fs.EachRecord(func(r *kgo.Record) {
			if ev != nil {
				return
			}
			ev = &outEvent{Topic: r.Topic, Key: string(r.Key), Headers: map[string]string{}}
			for _, hd := range r.Headers {
				ev.Headers[hd.Key] = string(hd.Value)
			}
		})
		if ev != nil {
			return *ev
		}
	}
}

// A wrong password fails New with one line about authentication. Kafka
// answers SASL_AUTHENTICATION_FAILED; kfake closes the connection, which the
// pipeline reads as the likely bad credentials it is.
func TestSecureBrokerWrongPassword(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range []struct {
		mech string
		tls  bool
	}{
		{broker.SASLPlain, false},
		{broker.SASLScramSHA256, false},
		{broker.SASLScramSHA512, false},
		{broker.SASLScramSHA256, true},
	} {
		name := tc.mech
		if tc.tls {
			name += " over tls"
		}
		t.Run(name, func(t *testing.T) {
			b, cfg := startSecure(t, pki, tc.mech, tc.tls, "wrong")

			p, err := New(context.Background(), cfg, Options{})
			if err == nil {
				p.Close()
				t.Fatal("New succeeded with a wrong password")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if !strings.Contains(msg, "authentication") || !strings.Contains(msg, b.Addr()) {
				t.Errorf("error %q, want one line about authentication at %s", msg, b.Addr())
			}
		})
	}
}

// startSecure starts a broker whose superuser "recon" has password s3cret
// (and TLS with client certificates when withTLS), and a recon config that
// logs in with password.
func startSecure(t *testing.T, pki testPKI, mech string, withTLS bool, password string) (*broker.Broker, *config.Config) {
	t.Helper()
	opts := broker.Options{Topics: []string{srcTopic, tgtTopic},
		SASL: broker.SASL{Mechanism: mech, User: "recon", Password: "s3cret"}}
	extra := saslYAML(mech, "recon", password)
	if withTLS {
		opts.TLS = broker.TLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CA}
		extra += tlsYAML(pki)
	}
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, secureConfig(t, b.Addr(), extra)
}
