package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML reads a duration such as "30s", "1m30s" or "500ms". A bare
// number is an error rather than a guess at its unit. A failure is returned as
// a *yaml.TypeError so that the decoder reports its line and carries on.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 30s", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		shown := n.Value
		if shown == "" {
			shown = `""`
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s: want a duration such as 30s", n.Line, shown)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as time.Duration.String does: "30s", "1m30s", "500ms".
func (d Duration) MarshalYAML() (any, error) {
	return time.Duration(d).String(), nil
}
