# Renders Salt's Jinja files with the real Jinja2, for the salttree checker.
# Reads a JSON request on stdin: {"root", "pillar", "grains", "jobs": [{"path",
# "context"}]}; writes {"results": [{"path", "text", "error"}], "calls": [...]}.
#
# Stand-ins for Salt's own parts: the import_json tag (Salt's Jinja
# extension), and salt[...] with a few execution functions that record their
# calls. An execution function outside the table is an error, so a state
# cannot quietly depend on one the checker does not know.
import json, os, sys, tomllib
import jinja2
from jinja2 import nodes
from jinja2.ext import Extension

req = json.load(sys.stdin)
root = req["root"]
calls = []

def lookup(data, key, default=None, delimiter=":"):
    cur = data
    for part in key.split(delimiter):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur

FUNCS = {
    "pillar.get": lambda key, default="", **kw: lookup(req["pillar"], key, default),
    "grains.get": lambda key, default="", **kw: lookup(req["grains"], key, default),
    "config.get": lambda key, default="", **kw: lookup(req["pillar"], key, lookup(req["grains"], key, default)),
}

class Salt:
    def __getitem__(self, fn):
        # Jinja turns a KeyError from [] into an undefined value, whose
        # message would hide the name: fail at the call instead.
        def call(*args, **kwargs):
            if fn not in FUNCS:
                raise RuntimeError("salt[%r] is not one of the stand-in's functions: %s" % (fn, ", ".join(sorted(FUNCS))))
            calls.append({"fn": fn, "args": [repr(a) for a in args]})
            return FUNCS[fn](*args, **kwargs)
        return call
    def __contains__(self, fn):
        return fn in FUNCS

class ImportJSON(Extension):
    """{% import_json 'path' as name %}, as Salt's SerializerExtension."""
    tags = {"import_json"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        path = parser.parse_expression()
        parser.stream.expect("name:as")
        target = parser.parse_assign_target()
        return nodes.Assign(target, self.call_method("_load", [path])).set_lineno(lineno)
    def _load(self, path):
        with open(os.path.join(root, path)) as f:
            return json.load(f)

env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                         extensions=[ImportJSON, "jinja2.ext.do"], keep_trailing_newline=True)
results = []
for job in req["jobs"]:
    path = job["path"]
    ctx = {"salt": Salt(), "grains": req["grains"], "pillar": req["pillar"],
           "saltenv": req["saltenv"], "opts": {}, "sls": job.get("sls", "")}
    ctx.update(job.get("context") or {})
    res = {"path": path, "text": "", "error": ""}
    try:
        res["text"] = env.get_template(path).render(ctx)
        if path.endswith(".toml.j2"):
            tomllib.loads(res["text"])
    except Exception as e:
        line = getattr(e, "lineno", None)
        res["error"] = "%s%s: %s" % (path, ":%d" % line if line else "", e)
    results.append(res)
json.dump({"results": results, "calls": calls}, sys.stdout)
