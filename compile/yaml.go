package compile

import "github.com/compose-spec/compose-go/v2/types"

// YAML renders p as a compose file. The output is deterministic: maps are
// written in key order.
func YAML(p *types.Project) ([]byte, error) {
	return p.MarshalYAML()
}
