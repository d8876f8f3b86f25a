package profile

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// shippedFS holds the shipped mappings, one JSON file per profile name.
//
//go:embed shipped/*.json
var shippedFS embed.FS

// ShippedNames returns the names of the mappings shipped with faxhook (e.g. "sinch_v3"),
// sorted.
func ShippedNames() []string {
	entries, _ := fs.ReadDir(shippedFS, "shipped")
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Shipped returns a fresh copy of the shipped mapping name (see ShippedNames), checked with
// Validate. Its comment names the documentation and SDK sources it was written from.
func Shipped(name string) (*Mapping, error) {
	if !slices.Contains(ShippedNames(), name) {
		return nil, fmt.Errorf("profile %q is not shipped (shipped: %s)", name, strings.Join(ShippedNames(), ", "))
	}
	b, err := shippedFS.ReadFile("shipped/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("reading shipped profile %s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := new(Mapping)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("decoding shipped profile %s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("shipped profile %s: %w", name, err)
	}
	return m, nil
}
