package installer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/metalk8s/buildchain/installer/change"
)

// StatePath is the node path of the list of installed archives: what
// serve serves, and what remove finds an archive by when its ISO is gone.
const StatePath = "/var/lib/metalk8s/installer/archives.json"

// stateVersion is the format of StatePath; a file of another version is
// refused rather than misread.
const stateVersion = 1

type stateFile struct {
	Version  int       `json:"version"`
	Archives []Archive `json:"archives"`
}

// State is the set of installed archives, sorted by kind then ID.
type State struct {
	Archives []Archive
}

// ParseState reads the state file's content; file names it in errors.
func ParseState(file string, data []byte) (State, error) {
	var sf stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return State{}, fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return State{}, fmt.Errorf("%s: data after the JSON object", file)
	}
	if sf.Version != stateVersion {
		return State{}, fmt.Errorf("%s: version %d, this installer reads version %d", file, sf.Version, stateVersion)
	}
	seen := map[string]bool{}
	for i, a := range sf.Archives {
		if err := a.Check(); err != nil {
			return State{}, fmt.Errorf("%s: archives[%d]: %w", file, i, err)
		}
		if seen[a.ID()] {
			return State{}, fmt.Errorf("%s: archives[%d]: %s is listed twice", file, i, a.ID())
		}
		seen[a.ID()] = true
	}
	s := State{Archives: sf.Archives}
	s.sort()
	return s, nil
}

// LoadState reads the state under tx's root; no file is no archive.
func LoadState(tx *change.Tx) (State, error) {
	data, err := os.ReadFile(tx.Path(StatePath))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	return ParseState(StatePath, data)
}

// Save writes the state through tx (so a failed run puts it back).
func (s State) Save(tx *change.Tx) error {
	s.sort()
	archives := s.Archives
	if archives == nil {
		archives = []Archive{}
	}
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, Archives: archives}, "", "  ")
	if err != nil {
		return err
	}
	if err := tx.MkdirAll("/var/lib/metalk8s/installer"); err != nil {
		return err
	}
	_, err = tx.WriteFile(StatePath, append(data, '\n'), 0o644)
	return err
}

func (s *State) sort() {
	sort.Slice(s.Archives, func(i, j int) bool {
		a, b := s.Archives[i], s.Archives[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.ID() < b.ID()
	})
}

// Find returns the installed archive with this ID.
func (s State) Find(id string) (Archive, bool) {
	for _, a := range s.Archives {
		if a.ID() == id {
			return a, true
		}
	}
	return Archive{}, false
}

// FindSource returns the installed archive of kind k mounted from source.
func (s State) FindSource(k Kind, source string) (Archive, bool) {
	for _, a := range s.Archives {
		if a.Kind == k && a.Source == source {
			return a, true
		}
	}
	return Archive{}, false
}

// Put adds a, or replaces the archive of the same ID.
func (s *State) Put(a Archive) {
	for i := range s.Archives {
		if s.Archives[i].ID() == a.ID() {
			s.Archives[i] = a
			return
		}
	}
	s.Archives = append(s.Archives, a)
	s.sort()
}

// Delete removes the archive with this ID.
func (s *State) Delete(id string) {
	out := s.Archives[:0]
	for _, a := range s.Archives {
		if a.ID() != id {
			out = append(out, a)
		}
	}
	s.Archives = out
}
