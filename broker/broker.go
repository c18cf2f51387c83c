package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrBadListen is returned by Start when Options.Listen is not a host:port
// with a numeric port.
var ErrBadListen = errors.New("invalid listen address")

// ErrDataDirInUse is returned by Start when another broker, in this process or
// another, holds the data dir. Two kfake nodes appending to the same segment
// files would corrupt them silently.
var ErrDataDirInUse = errors.New("data dir in use by another broker")

// Options configures Start. The zero value is an in-memory broker on a free
// loopback port.
type Options struct {
	// Listen is the host:port to listen on. An empty string, or an empty host,
	// means 127.0.0.1; port 0 picks a free port. The broker advertises this
	// address in metadata, so a wildcard host (0.0.0.0) is only reachable
	// from the same machine.
	Listen string

	// DataDir, if set, persists topics, records and group offsets there, so
	// that a broker started again on it carries on where the last one
	// stopped. Empty keeps everything in memory.
	DataDir string

	// Partitions is the number of partitions of seeded topics and of topics
	// created on first use. Zero means 1, which keeps a topic's order total,
	// as the demo and most tests want.
	Partitions int

	// Topics are created at start if they do not exist yet. A topic persisted
	// in DataDir keeps its partition count.
	Topics []string

	// Logger receives kfake's logs: its request chatter at debug, its
	// internal errors at error. Nil discards them.
	Logger *slog.Logger

	// SASL, if its Mechanism is set, makes every client authenticate as its
	// one superuser. The zero value accepts unauthenticated clients.
	SASL SASL

	// TLS, if set, serves TLS only. The zero value serves plaintext.
	TLS TLS

	// Extra options are applied after the broker's own, so they override
	// them. For tests: fault injection, more SASL users.
	Extra []kfake.Opt

	// SchemaRegistry, if set, is a host:port (as Listen; port 0 picks a
	// free port) where an in-memory Confluent-compatible schema registry
	// (franz-go's srfake) is served beside the broker, over plain HTTP. It
	// keeps nothing across restarts, even with a DataDir.
	SchemaRegistry string
}

// SASL mechanisms the broker accepts; they are the ones recon's config
// offers.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// ErrBadSecurity is returned by Start when the SASL or TLS options
// contradict each other or name what does not exist.
var ErrBadSecurity = errors.New("invalid security options")

// SASL is the superuser a SASL-enabled broker accepts. Mechanism is one of
// SASLPlain, SASLScramSHA256 or SASLScramSHA512; User and Password are then
// required. kfake speaks the mechanism it was seeded with only.
type SASL struct {
	Mechanism string
	User      string
	Password  string
}

// TLS is the broker's listener certificate, given either as a ready Config or
// as PEM files, not both.
type TLS struct {
	// Config is used as is; the files below must then be empty.
	Config *tls.Config

	// CertFile and KeyFile are the server certificate and its key; they go
	// together.
	CertFile string
	KeyFile  string

	// ClientCAFile, if set, requires every client to present a certificate
	// signed by one of its CAs (tls.RequireAndVerifyClientCert). It needs
	// CertFile and KeyFile.
	ClientCAFile string
}

// Enabled reports whether any TLS setting is present.
func (t TLS) Enabled() bool {
	return t.Config != nil || t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != ""
}

// config builds the listener's tls.Config from t, which must be Enabled.
func (t TLS) config() (*tls.Config, error) {
	if t.Config != nil {
		if t.CertFile != "" || t.KeyFile != "" || t.ClientCAFile != "" {
			return nil, fmt.Errorf("%w: tls config and tls files are exclusive", ErrBadSecurity)
		}
		return t.Config, nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, fmt.Errorf("%w: tls cert file and key file go together", ErrBadSecurity)
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls certificate %s: %w", ErrBadSecurity, t.CertFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls client CA: %w", ErrBadSecurity, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls client CA %s: no certificates found", ErrBadSecurity, t.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// securityOpts turns opts' SASL and TLS into kfake options.
func securityOpts(s SASL, t TLS) ([]kfake.Opt, error) {
	var kopts []kfake.Opt
	switch s.Mechanism {
	case "":
		if s.User != "" || s.Password != "" {
			return nil, fmt.Errorf("%w: sasl user or password without a mechanism", ErrBadSecurity)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.User == "" || s.Password == "" {
			return nil, fmt.Errorf("%w: sasl mechanism %s needs a user and a password", ErrBadSecurity, s.Mechanism)
		}
		kopts = append(kopts, kfake.EnableSASL(), kfake.Superuser(s.Mechanism, s.User, s.Password))
	default:
		return nil, fmt.Errorf("%w: sasl mechanism %q: want %s, %s or %s", ErrBadSecurity, s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if t.Enabled() {
		tc, err := t.config()
		if err != nil {
			return nil, err
		}
		kopts = append(kopts, kfake.TLS(tc))
	}
	return kopts, nil
}

// Broker is a running embedded broker. Close it to release its port and to
// flush its data dir.
type Broker struct {
	cluster  *kfake.Cluster
	addr     string
	dataDir  string
	logs     *logBridge
	unlock   func() error
	registry *registry // nil without Options.SchemaRegistry

	closeOnce sync.Once
	closeErr  error
}

// Start starts one kfake node listening on opts.Listen, with automatic topic
// creation enabled so that producers need no setup.
func Start(opts Options) (*Broker, error) {
	addr, err := listenAddr(opts.Listen)
	if err != nil {
		return nil, err
	}
	parts := opts.Partitions
	switch {
	case parts < 0:
		return nil, fmt.Errorf("partitions %d: must not be negative", parts)
	case parts == 0:
		parts = 1
	}
	for _, t := range opts.Topics {
		if t == "" {
			return nil, errors.New("seeded topic with an empty name")
		}
	}
	secOpts, err := securityOpts(opts.SASL, opts.TLS)
	if err != nil {
		return nil, err
	}
	if opts.SchemaRegistry != "" {
		if _, err := listenAddr(opts.SchemaRegistry); err != nil {
			return nil, fmt.Errorf("schema registry: %w", err)
		}
	}

	unlock := func() error { return nil }
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		if unlock, err = lockDir(opts.DataDir); err != nil {
			return nil, err
		}
	}

	logs := &logBridge{log: opts.Logger}
	// kfake always asks to listen on 127.0.0.1; we answer with the address we
	// were given so that its host is honoured too. The error is kept because
	// kfake returns it bare, and it is the one an operator needs to see.
	var listenErr error
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			listenErr = err
			return ln, err
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(parts),
		kfake.WithLogger(logs),
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	kopts = append(kopts, secOpts...)
	kopts = append(kopts, opts.Extra...)

	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		_ = unlock() // the start error matters more than a failed unlock
		if listenErr != nil {
			return nil, listenErr
		}
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	b := &Broker{
		cluster: c,
		addr:    c.ListenAddrs()[0],
		dataDir: opts.DataDir,
		logs:    logs,
		unlock:  unlock,
	}

	if opts.SchemaRegistry != "" {
		if b.registry, err = startRegistry(opts.SchemaRegistry); err != nil {
			return nil, errors.Join(err, b.Close())
		}
	}

	// Not kfake.SeedTopics: kfake ignores it when it loads a data dir, so a
	// topic added to Topics between two runs would never be created.
	for _, t := range opts.Topics {
		err := c.CreateTopic(t, int32(parts), nil)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return nil, errors.Join(fmt.Errorf("create topic %s: %w", t, err), b.Close())
		}
	}
	return b, nil
}

// listenAddr validates s up front, because net.Listen would accept service
// names ("kafka") and report a bad address only as a generic listen error.
func listenAddr(s string) (string, error) {
	if s == "" {
		return "127.0.0.1:0", nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		reason := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			reason = ae.Err
		}
		return "", fmt.Errorf("%w %q: %s", ErrBadListen, s, reason)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%w %q: port %q is not a number from 0 to 65535", ErrBadListen, s, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Addr is the host:port clients bootstrap from, with the port actually bound.
func (b *Broker) Addr() string { return b.addr }

// SchemaRegistryURL is the schema registry's base URL (http://host:port), or
// "" without Options.SchemaRegistry.
func (b *Broker) SchemaRegistryURL() string {
	if b.registry == nil {
		return ""
	}
	return b.registry.url
}

// Cluster is the kfake cluster underneath, for fault injection in tests.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker and, with a data dir, writes its state there. It
// returns what kfake failed to persist, which kfake itself only logs. Calling
// it again returns the first result.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		var regErr error
		if b.registry != nil {
			regErr = b.registry.close()
		}
		b.logs.capture()
		b.cluster.Close()
		var err error
		if lost := b.logs.captured(); lost != nil {
			err = fmt.Errorf("flush data dir %s: %w", b.dataDir, lost)
		}
		b.closeErr = errors.Join(regErr, err, b.unlock())
	})
	return b.closeErr
}

// logBridge is the kfake.Logger that forwards to slog. While the broker
// closes it keeps kfake's errors instead, so that Close can return them: an
// error is either returned or logged, not both.
type logBridge struct {
	log *slog.Logger

	mu        sync.Mutex
	capturing bool
	errs      []error
}

var _ kfake.Logger = (*logBridge)(nil)

func (l *logBridge) Logf(level kfake.LogLevel, format string, args ...any) {
	if level == kfake.LogLevelError {
		l.mu.Lock()
		if l.capturing {
			l.errs = append(l.errs, fmt.Errorf(format, args...))
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
	if l.log == nil {
		return
	}
	// kfake's errors "generally should not happen" (its docs); everything
	// else is per-request chatter.
	sl := slog.LevelDebug
	if level == kfake.LogLevelError {
		sl = slog.LevelError
	}
	ctx := context.Background() // kfake gives no request context to log under
	if !l.log.Enabled(ctx, sl) {
		return
	}
	l.log.Log(ctx, sl, fmt.Sprintf(format, args...))
}

func (l *logBridge) capture() {
	l.mu.Lock()
	l.capturing = true
	l.mu.Unlock()
}

func (l *logBridge) captured() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}
