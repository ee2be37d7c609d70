package step

// SetSection adds a top-level section beside "steps" to the build report,
// for what a build measures that is not a step's result (the size report
// of docs/integrity.md). A later call with the same name replaces it; nil
// removes it. "steps" itself cannot be replaced.
func (e *Engine) SetSection(name string, v any) {
	if name == "steps" {
		panic("step: the steps section is the engine's own")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v == nil {
		delete(e.sections, name)
		return
	}
	if e.sections == nil {
		e.sections = map[string]any{}
	}
	e.sections[name] = v
}

// reportSections is the report document: the steps and every section,
// with keys in sorted order (encoding/json sorts map keys), so that a
// report without sections is the same bytes as before sections existed.
func (e *Engine) reportSections(steps []Result) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	doc := make(map[string]any, len(e.sections)+1)
	for k, v := range e.sections {
		doc[k] = v
	}
	doc["steps"] = steps
	return doc
}
