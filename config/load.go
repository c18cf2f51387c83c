package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem with one setting. Validate and Parse report every
// problem as a *FieldError, joined with errors.Join; use errors.As or walk
// Unwrap() []error to get at them one by one.
type FieldError struct {
	Path string // YAML path, e.g. datasets[0].targets[1].version
	// Line is the 1-based line of the setting in the file or, when the setting
	// is absent, of its nearest parent that is written down; 0 when unknown
	// (always, from Validate alone).
	Line int
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// Load reads the config file at path: ${ENV} and $ENV are expanded with
// os.LookupEnv, then it is decoded strictly, defaulted and validated (see
// Parse). Every error line names the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil {
		return nil, prefixErrors(path, err)
	}
	return c, nil
}

// prefixErrors puts the file name in front of every joined error, so that each
// line of the message stands on its own. The errors stay reachable with
// errors.As.
func prefixErrors(path string, err error) error {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return fmt.Errorf("%s: %w", path, err)
	}
	errs := joined.Unwrap()
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s: %w", path, e)
	}
	return errors.Join(out...)
}

// Parse is Load from bytes.
//
//  1. Variables are expanded in the text, before it is parsed, with os.Expand
//     semantics: ${NAME} and $NAME are replaced by lookupEnv(NAME), or by ""
//     when unset (Validate then reports the settings that required a value);
//     $$ stands for a literal $. A nil lookupEnv sees no variables. Since the
//     value lands in the YAML text, quote the setting ('${X}') when the value
//     may hold YAML syntax such as ": ", " #" or a leading quote.
//  2. The document is decoded strictly: an unknown field, or a value of the
//     wrong shape (a list where a mapping belongs, "30" for a duration), is an
//     error naming its line and path. All of them are reported at once.
//  3. ApplyDefaults, then Validate; Validate's errors get their line numbers.
//
// The returned error is an errors.Join of one-line errors, mostly *FieldError.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	text := expand(data, lookupEnv)
	root, err := parseDocument(text)
	if err != nil {
		return nil, err
	}
	var c Config
	if root != nil {
		var errs []error
		checkShape(root, reflect.TypeOf(c), "", map[*yaml.Node]bool{}, &errs)
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		// The shape check above should leave nothing for the decoder to
		// reject; KnownFields keeps it strict should the two disagree.
		dec := yaml.NewDecoder(bytes.NewReader(text))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
	}
	c.ApplyDefaults()
	errs := c.problems()
	for _, e := range errs {
		e.Line = lineOf(root, e.Path)
	}
	if len(errs) > 0 {
		return nil, joinFieldErrors(errs)
	}
	return &c, nil
}

// expand substitutes environment variables in the config text.
func expand(data []byte, lookupEnv func(string) (string, bool)) []byte {
	return []byte(os.Expand(string(data), func(name string) string {
		if name == "$" { // os.Expand reads "$$" as the variable "$": an escaped dollar.
			return "$"
		}
		if lookupEnv == nil {
			return ""
		}
		v, _ := lookupEnv(name)
		return v
	}))
}

// parseDocument returns the top node of the only document in text, or nil when
// text holds no document at all (empty, or only comments).
func parseDocument(text []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("line %d: a second YAML document; a config file holds one", next.Line)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.ShortTag() == "!!null" {
		return nil, nil
	}
	return top, nil
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkShape walks the document alongside the Go type it decodes into and
// reports, with line and path, every unknown field and every value of the
// wrong shape. It looks at each anchored node once, whatever the number of
// aliases to it, so that alias bombs and self-references cannot stall it.
func checkShape(n *yaml.Node, t reflect.Type, path string, seen map[*yaml.Node]bool, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		if seen[n.Alias] {
			return
		}
		seen[n.Alias] = true
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // decodes to the zero value
	}
	fail := func(line int, format string, args ...any) {
		*errs = append(*errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			fail(n.Line, "%s", typeErrorText(err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail(n.Line, "want a mapping, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				checkMerge(v, t, path, seen, errs)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, &FieldError{Path: joinPath(path, k.Value), Line: k.Line,
					Msg: "unknown field; known fields: " + strings.Join(fieldNames(t), ", ")})
				continue
			}
			checkShape(v, ft, joinPath(path, k.Value), seen, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			fail(n.Line, "want a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				fail(k.Line, "want a name as key, got %s", describe(k))
				continue
			}
			checkShape(v, t.Elem(), joinPath(path, k.Value), seen, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail(n.Line, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			checkShape(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), seen, errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			fail(n.Line, "want %s, got %s", scalarWant(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			fail(n.Line, "want %s, got %s", scalarWant(t), describe(n))
		}
	}
}

// checkMerge checks the value of a "<<" merge key: a mapping or a list of them.
func checkMerge(v *yaml.Node, t reflect.Type, path string, seen map[*yaml.Node]bool, errs *[]error) {
	if v.Kind == yaml.SequenceNode {
		for _, m := range v.Content {
			checkShape(m, t, path, seen, errs)
		}
		return
	}
	checkShape(v, t, path, seen, errs)
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// typeErrorText is the message of an UnmarshalYAML error without yaml's
// decoration: the caller adds line and path itself.
func typeErrorText(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlLinePrefix.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

func scalarWant(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a single value"
}

// yamlFields maps the YAML names of struct t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := yamlName(f); ok {
			m[name] = f.Type
		}
	}
	return m
}

// fieldNames lists the YAML names of struct t's fields in declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// lineOf finds the line of the setting at path (datasets[0].source.topic) or,
// when it is not written down, of its nearest ancestor that is; 0 if none is.
// A map key holding "." or "[" resolves to its parent, which is close enough.
func lineOf(root *yaml.Node, path string) int {
	line := 0
	n := root
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		n = mappingValue(n, key)
		if n == nil {
			return line
		}
		line = n.Line
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			n = deref(n)
			if !ok || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

// mappingValue returns the value under key in mapping n, with the key's line
// (a block mapping's value may start on the next line, the key is where the
// eye looks).
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := *deref(n.Content[i+1])
			v.Line = n.Content[i].Line
			return &v
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func joinFieldErrors(errs []*FieldError) error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}
