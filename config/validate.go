package config

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/recon-dev/recon/compare"
)

// namePattern constrains dataset and system names: they appear in record keys
// (<dataset>/<target>/<key>), Badger keys and metric labels.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

var (
	formats      = []string{"debezium-json", "debezium-avro", "flat-json", "flat-avro"}
	outFormats   = []string{"json", "avro"}
	repairModes  = []string{"off", "dry-run", "approve", "auto"}
	repairKinds  = []string{"missing", "lagging", "orphan", "conflict"}
	payloads     = []string{"full", "reference"}
	saslMechs    = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
	versionsHelp = "want lsn, position, offset or field:<name>"
)

// Validate reports every problem at once, as an errors.Join of one-line
// *FieldError values, each prefixed with its YAML path, e.g.
//
//	datasets[0].targets[1].version: unknown version "lsnx": want lsn, position, offset or field:<name>
//
// It expects ApplyDefaults to have run: a setting left empty is reported as
// unset even where a default exists. Secrets are never part of a message.
func (c *Config) Validate() error {
	return joinFieldErrors(c.problems())
}

// problems is Validate's work: the list of everything wrong, in config order.
type problems []*FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// oneOf reports v unless it is one of allowed; what names the setting ("format").
func (p *problems) oneOf(path, what, v string, allowed []string) {
	if slices.Contains(allowed, v) {
		return
	}
	if v == "" {
		p.add(path, "must be set: want %s", orList(allowed))
		return
	}
	p.add(path, "unknown %s %q: want %s", what, v, orList(allowed))
}

func orList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

func (c *Config) problems() problems {
	var p problems
	validateRulesVersion(&p, c.RulesVersion)
	c.Kafka.validate(&p)
	if u := c.SchemaRegistry.URL; u != "" && !isHTTPURL(u) {
		p.add("schema_registry.url", "want an http:// or https:// URL") // no echo: it may hold credentials
	}
	if c.State.Dir == "" {
		p.add("state.dir", "must be set")
	}
	if c.ShutdownTimeout < 0 {
		p.add("shutdown_timeout", "must be >= 0 (0 means %s), got %s", DefaultShutdownTimeout, c.ShutdownTimeout)
	}
	c.HTTP.validate(&p)
	if len(c.Digest.Key) < MinDigestKeyLen {
		p.add("digest.key", "must be at least %d bytes; set RECON_DIGEST_KEY", MinDigestKeyLen)
	}
	registry := c.SchemaRegistry.URL != ""

	// topics maps every input topic to the path of the system that owns it.
	topics := map[string]string{}
	if len(c.Datasets) == 0 {
		p.add("datasets", "at least one dataset is required")
	}
	names := map[string]string{}
	for i := range c.Datasets {
		path := fmt.Sprintf("datasets[%d]", i)
		ds := &c.Datasets[i]
		if prev, dup := names[ds.Name]; dup && ds.Name != "" {
			p.add(path+".name", "%q is already the name of %s", ds.Name, prev)
		} else {
			names[ds.Name] = path
		}
		ds.validate(&p, path, registry, topics)
	}
	c.Outputs.validate(&p, registry, topics)
	if c.Outbox.MaxBytes < MinOutboxMaxBytes {
		p.add("outbox.max_bytes", "must be at least %d (64 KiB), got %d", MinOutboxMaxBytes, c.Outbox.MaxBytes)
	}
	return p
}

func (k *Kafka) validate(p *problems) {
	if len(k.Brokers) == 0 {
		p.add("kafka.brokers", "at least one broker is required")
	}
	if id := k.InstanceID; id != "" && (strings.TrimSpace(id) != id || len(id) > 249) {
		p.add("kafka.instance_id", "%q: want no surrounding spaces and at most 249 characters", id)
	}
	if k.MaxRecordBytes <= 0 || k.MaxRecordBytes > MaxMaxRecordBytes {
		p.add("kafka.max_record_bytes", "must be from 1 to %d, got %d", MaxMaxRecordBytes, k.MaxRecordBytes)
	}
	for i, b := range k.Brokers {
		path := fmt.Sprintf("kafka.brokers[%d]", i)
		switch {
		case strings.TrimSpace(b) == "":
			p.add(path, "must not be empty")
		case strings.Contains(b, "://"):
			p.add(path, "%q: want host:port, not a URL", b)
		}
	}
	if k.Group == "" {
		p.add("kafka.group", "must be set")
	}
	if k.ClientID == "" {
		p.add("kafka.client_id", "must be set")
	}
	switch {
	case k.TLS.CertFile != "" && k.TLS.KeyFile == "":
		p.add("kafka.tls.key_file", "must be set with cert_file")
	case k.TLS.KeyFile != "" && k.TLS.CertFile == "":
		p.add("kafka.tls.cert_file", "must be set with key_file")
	}
	s := k.SASL
	if s.Mechanism == "" {
		if s.Username != "" || s.Password != "" {
			p.add("kafka.sasl.mechanism", "must be set when username or password is: want %s", orList(saslMechs))
		}
		return
	}
	p.oneOf("kafka.sasl.mechanism", "mechanism", s.Mechanism, saslMechs)
	if s.Username == "" {
		p.add("kafka.sasl.username", "must be set with mechanism %s", s.Mechanism)
	}
	if s.Password == "" {
		p.add("kafka.sasl.password", "must be set with mechanism %s", s.Mechanism)
	}
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "<redacted>"
	}
	return u.Redacted()
}

func validateListen(p *problems, path, addr string) {
	if addr == "" {
		p.add(path, "must be set: want host:port such as 127.0.0.1:8080")
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		p.add(path, "%q: want host:port such as 127.0.0.1:8080", addr)
	}
}

// tokenNamePattern constrains API token names: they are the actors of audit
// records and approved_by, so plain words, e-mail addresses and the like.
var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@+-]*$`)

func (h *HTTP) validate(p *problems) {
	validateListen(p, "http.listen", h.Listen)
	names := map[string]string{}
	hashes := map[string]string{}
	for i, t := range h.Tokens {
		path := fmt.Sprintf("http.tokens[%d]", i)
		switch prev, dup := names[t.Name]; {
		case t.Name == "":
			p.add(path+".name", "must be set")
		case !tokenNamePattern.MatchString(t.Name):
			p.add(path+".name", "%q must match %s", t.Name, tokenNamePattern)
		case dup:
			p.add(path+".name", "%q is already the name of %s", t.Name, prev)
		default:
			names[t.Name] = path
		}
		// The hash is no secret, but echoing a token pasted here by mistake
		// would be: the message never quotes the value.
		sum := strings.ToLower(t.SHA256)
		switch prev, dup := hashes[sum]; {
		case t.SHA256 == "":
			p.add(path+".sha256", "must be set: the SHA-256 of the token, as 64 hex digits (printf %%s \"$TOKEN\" | sha256sum)")
		case !isHex(sum) || len(sum) != 64:
			p.add(path+".sha256", "want 64 hex digits, the SHA-256 of the token (printf %%s \"$TOKEN\" | sha256sum), got %d characters", len(t.SHA256))
		case dup:
			p.add(path+".sha256", "is also the hash of %s; each token needs its own", prev)
		default:
			hashes[sum] = path
		}
		p.oneOf(path+".role", "role", t.Role, Roles())
	}
	switch {
	case h.TLS.CertFile != "" && h.TLS.KeyFile == "":
		p.add("http.tls.key_file", "must be set with cert_file")
	case h.TLS.KeyFile != "" && h.TLS.CertFile == "":
		p.add("http.tls.cert_file", "must be set with key_file")
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (o *Outputs) validate(p *problems, registry bool, inputs map[string]string) {
	seen := map[string]string{}
	for _, out := range []struct {
		path, topic string
		optional    bool
	}{
		{"outputs.divergences", o.Divergences, false},
		{"outputs.repairs", o.Repairs, false},
		{"outputs.dlq", o.DLQ, false},
		{"outputs.audit", o.Audit, true},
	} {
		switch prev, dup := seen[out.topic]; {
		case out.topic == "" && out.optional:
			continue
		case out.topic == "":
			p.add(out.path, "must be set")
		case dup:
			p.add(out.path, "topic %q is also %s; each output needs its own topic", out.topic, prev)
		case inputs[out.topic] != "":
			p.add(out.path, "topic %q is also the input of %s", out.topic, inputs[out.topic])
		}
		seen[out.topic] = out.path
	}
	p.oneOf("outputs.format", "format", o.Format, outFormats)
	if o.Format == "avro" && !registry {
		p.add("outputs.format", "avro needs schema_registry.url")
	}
}

func (d *Dataset) validate(p *problems, path string, registry bool, topics map[string]string) {
	validateName(p, path+".name", d.Name)
	fold := d.Compare.fold
	keys := map[string]bool{} // by fold(name)
	if len(d.Key) == 0 {
		p.add(path+".key", "must list at least one field")
	}
	for i, k := range d.Key {
		kp := fmt.Sprintf("%s.key[%d]", path, i)
		switch {
		case k == "":
			p.add(kp, "must not be empty")
		case keys[fold(k)]:
			p.add(kp, "duplicate field %q%s", k, d.Compare.caseNote())
		}
		keys[fold(k)] = true
	}
	if d.Window <= 0 {
		p.add(path+".window", "must be > 0, got %s", d.Window)
	}

	// systems maps system names to their paths, source and targets alike.
	systems := map[string]string{}
	d.Source.validate(p, path+".source", false, registry, systems, topics)
	if len(d.Targets) == 0 {
		p.add(path+".targets", "at least one target is required")
	}
	for i := range d.Targets {
		d.Targets[i].validate(p, fmt.Sprintf("%s.targets[%d]", path, i), true, registry, systems, topics)
	}
	d.Compare.validate(p, path+".compare", keys)
	if d.Compare.CaseInsensitive {
		d.Source.validateFoldedRename(p, path+".source")
		for i := range d.Targets {
			d.Targets[i].validateFoldedRename(p, fmt.Sprintf("%s.targets[%d]", path, i))
		}
	}
	d.Repair.validate(p, path+".repair")
}

func validateName(p *problems, path, name string) {
	switch {
	case name == "":
		p.add(path, "must be set")
	case !namePattern.MatchString(name):
		p.add(path, "%q must match %s (lowercase letters, digits, _ . -)", name, namePattern)
	}
}

func (s *System) validate(p *problems, path string, target, registry bool, names, topics map[string]string) {
	validateName(p, path+".name", s.Name)
	if prev, dup := names[s.Name]; dup && s.Name != "" {
		p.add(path+".name", "%q is already the name of %s", s.Name, prev)
	} else {
		names[s.Name] = path
	}
	switch prev, dup := topics[s.Topic]; {
	case s.Topic == "":
		p.add(path+".topic", "must be set")
	case dup:
		p.add(path+".topic", "topic %q is already read by %s; one topic belongs to one system", s.Topic, prev)
	default:
		topics[s.Topic] = path
	}
	p.oneOf(path+".format", "format", s.Format, formats)
	if IsAvroFormat(s.Format) && !registry {
		p.add(path+".format", "%s needs schema_registry.url", s.Format)
	}
	if s.Version == "" {
		p.add(path+".version", "must be set: %s", versionsHelp)
	} else if _, err := compare.ParseVersionSpec(s.Version); err != nil {
		p.add(path+".version", "%v", err)
	}
	switch {
	case !target && s.Lineage != "":
		p.add(path+".lineage", "only a target has a lineage; the source is the lineage")
	case target:
		if _, err := compare.ParseLineageSpec(s.Lineage); err != nil {
			p.add(path+".lineage", "%v", err)
		}
	}
	renamed := map[string]string{}
	for _, from := range sortedKeys(s.Rename) {
		to := s.Rename[from]
		rp := path + ".rename." + from
		switch prev, dup := renamed[to]; {
		case from == "":
			p.add(path+".rename", "a column name must not be empty")
		case to == "":
			p.add(rp, "must name a dataset column")
		case dup:
			p.add(rp, "%q is also the new name of %q", to, prev)
		default:
			renamed[to] = from
		}
	}
}

func (c *Compare) validate(p *problems, path string, keys map[string]bool) {
	for i, f := range c.Ignore {
		ip := fmt.Sprintf("%s.ignore[%d]", path, i)
		switch {
		case f == "":
			p.add(ip, "must not be empty")
		case keys[c.fold(f)]:
			p.add(ip, "%q is a key field; a key field cannot be ignored", f)
		}
	}
	typed := map[string]string{} // fold(name) -> name
	for _, f := range sortedKeys(c.Types) {
		if f == "" {
			p.add(path+".types", "a field name must not be empty")
			continue
		}
		if prev, dup := typed[c.fold(f)]; dup {
			p.add(path+".types."+f, "%q is also typed as %q%s", f, prev, c.caseNote())
		}
		typed[c.fold(f)] = f
		if _, err := compare.ParseFieldType(c.Types[f]); err != nil {
			p.add(path+".types."+f, "%v", err)
		}
	}
	if ft := c.FloatTolerance; !(ft >= 0) || math.IsInf(ft, 0) {
		p.add(path+".float_tolerance", "must be a finite number >= 0, got %v", ft)
	}
}

func (r *Repair) validate(p *problems, path string) {
	p.oneOf(path+".mode", "mode", r.Mode, repairModes)
	for i, k := range r.AutoKinds {
		p.oneOf(fmt.Sprintf("%s.auto_kinds[%d]", path, i), "kind", k, repairKinds)
	}
	p.oneOf(path+".payload", "payload", r.Payload, payloads)
	if r.MaxPerMinute < 0 {
		p.add(path+".max_per_minute", "must be >= 0 (0 means %d), got %d", DefaultMaxPerMinute, r.MaxPerMinute)
	}
	if x := r.MaxDivergentRatio; x != nil && (*x < 0 || *x > 1 || *x != *x) {
		p.add(path+".max_divergent_ratio", "must be from 0 (off) to 1, got %g", *x)
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// fold is how column names compare under this dataset's case_insensitive:
// lower-cased when set, as compare.CaseInsensitive folds them.
func (c *Compare) fold(name string) string {
	if c.CaseInsensitive {
		return strings.ToLower(name)
	}
	return name
}

func (c *Compare) caseNote() string {
	if c.CaseInsensitive {
		return " (compare.case_insensitive: names differing only in case are one column)"
	}
	return ""
}

// validateFoldedRename reports rename entries that become one under
// compare.case_insensitive: two source columns or two new names that differ
// only in case. The byte-for-byte checks are System.validate's.
func (s *System) validateFoldedRename(p *problems, path string) {
	from := map[string]string{}
	to := map[string]string{}
	for _, f := range sortedKeys(s.Rename) {
		t := s.Rename[f]
		rp := path + ".rename." + f
		if f == "" || t == "" {
			continue
		}
		if prev, dup := from[strings.ToLower(f)]; dup {
			p.add(rp, "%q and %q are one column under compare.case_insensitive", prev, f)
		}
		from[strings.ToLower(f)] = f
		if prev, dup := to[strings.ToLower(t)]; dup && prev != t {
			p.add(rp, "%q is also the new name of a column, as %q, under compare.case_insensitive", t, prev)
		}
		to[strings.ToLower(t)] = t
	}
}

// validateRulesVersion keeps rules_version printable: it is a label people
// read in events, audit records and headers.
func validateRulesVersion(p *problems, v string) {
	switch {
	case v == "":
		p.add("rules_version", "must not be empty")
	case len(v) > MaxRulesVersionLen:
		p.add("rules_version", "at most %d bytes, got %d", MaxRulesVersionLen, len(v))
	case strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 || !utf8.ValidString(v):
		p.add("rules_version", "%q: want printable characters without spaces, e.g. 2026-12-05 or v3", v)
	}
}
