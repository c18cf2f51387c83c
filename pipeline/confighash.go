package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/recon-dev/recon/config"
)

// ConfigHash identifies a dataset's effective config (after defaults): the
// SHA-256, in hex, of its canonical JSON. The canonical JSON is the dataset's
// YAML shape (config file key names, durations as "30s") with empty and zero
// settings left out and object keys sorted, without insignificant spaces or
// HTML escaping. So how the file is written (flow or block style, key order,
// comments, a default spelled out or left implicit) does not change the hash,
// and every setting that changes how recon judges or repairs the dataset does.
// Events and audit records carry it; a change is an audit record itself.
func ConfigHash(d config.Dataset) (string, error) {
	doc, err := canonicalDataset(d)
	if err != nil {
		return "", fmt.Errorf("hashing the config of dataset %s: %w", d.Name, err)
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalDataset renders d as its canonical JSON.
func canonicalDataset(d config.Dataset) ([]byte, error) {
	y, err := yaml.Marshal(d)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := yaml.Unmarshal(y, &tree); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(prune(tree)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// prune drops empty and zero values from a decoded YAML tree: in a config
// after defaults, an empty setting and an absent one mean the same.
func prune(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if x = prune(x); x != nil {
				out[k] = x
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = prune(x)
		}
		return out
	case string:
		if v == "" {
			return nil
		}
	case bool:
		if !v {
			return nil
		}
	case int:
		if v == 0 {
			return nil
		}
	case float64:
		if v == 0 {
			return nil
		}
	}
	return v
}
