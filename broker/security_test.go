package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestSecurityOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"unknown mechanism", Options{SASL: SASL{Mechanism: "GSSAPI", User: "u", Password: "p"}}},
		{"mechanism without password", Options{SASL: SASL{Mechanism: SASLPlain, User: "u"}}},
		{"user without mechanism", Options{SASL: SASL{User: "u"}}},
		{"cert without key", Options{TLS: TLS{CertFile: "server.crt"}}},
		{"client CA alone", Options{TLS: TLS{ClientCAFile: "ca.crt"}}},
		{"config and files", Options{TLS: TLS{Config: &tls.Config{}, CertFile: "a", KeyFile: "b"}}},
		{"missing cert file", Options{TLS: TLS{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(tc.opts)
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrBadSecurity) {
				t.Errorf("error %v, want ErrBadSecurity", err)
			}
		})
	}
}

// The superuser's right password is accepted, a wrong one refused, and users
// added through Extra are left to kfake.
func TestSASLRefusesWrongPassword(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			b, err := Start(Options{
				SASL:  SASL{Mechanism: mech, User: "admin", Password: "right"},
				Extra: []kfake.Opt{kfake.User(SASLScramSHA512, "other", "theirs")},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ping := func(m sasl.Mechanism) error {
				cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.SASL(m))
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return cl.Ping(ctx)
			}
			as := func(user, pass string) sasl.Mechanism {
				switch mech {
				case SASLPlain:
					return plain.Auth{User: user, Pass: pass}.AsMechanism()
				case SASLScramSHA256:
					return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
				}
				return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
			}
			if err := ping(as("admin", "right")); err != nil {
				t.Errorf("right password: %v", err)
			}
			if err := ping(as("admin", "wrong")); err == nil {
				t.Error("wrong password accepted")
			}
			if err := ping(scram.Auth{User: "other", Pass: "theirs"}.AsSha512Mechanism()); err != nil {
				t.Errorf("user added through Extra: %v", err)
			}
		})
	}
}
