"""Diagnostic scripts the offline planner writes from a ticket's attachments.

Each script is real code run in the sandbox like Claude's: it reads one
attachment from /work/input, prints a readable report, and prints each
conclusion on its own line as ``FINDING: ...`` so the planner can compose a
reply from what the code actually found. Paths are embedded with
``json.dumps`` (a valid Python string literal), never by string pasting.
"""

from __future__ import annotations

import json
import shlex

from pydantic import BaseModel


class EvidenceFile(BaseModel):
    """A file the planner writes a script for: ``name`` is its path under /work/input."""

    name: str
    media_type: str
    size: int = 0
    sha256: str = ""


_LOG = r"""
import collections, re, sys
path = {path}
pattern = re.compile(r"\b(FATAL|CRITICAL|ERROR|WARN(?:ING)?)\b", re.I)
stamp = re.compile(r"\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}:\d{{2}}")
noise = re.compile(r"0x[0-9a-f]+|[0-9a-f]{{8}}-[0-9a-f-]{{27}}|\d+(?:\.\d+)?", re.I)
levels, groups, statuses = collections.Counter(), collections.Counter(), collections.Counter()
first = last = None
total = 0
with open(path, encoding="utf-8", errors="replace") as fh:
    for line in fh:
        total += 1
        for code in re.findall(r"\b(?:status|HTTP/\d\.\d\"?)\s*[=:]?\s*([1-5]\d\d)\b", line):
            statuses[code] += 1
        m = pattern.search(line)
        if not m:
            continue
        level = m.group(1).upper().replace("WARNING", "WARN")
        levels[level] += 1
        ts = stamp.search(line)
        if ts:
            first = first or ts.group(0)
            last = ts.group(0)
        if level != "WARN":
            message = line[m.end():].strip(" :-]\t\n")[:160]
            groups[noise.sub("<n>", message)] += 1
print(f"{{total}} lines; by level: {{dict(levels) or 'no warnings or errors'}}")
if statuses:
    print("HTTP status codes:", dict(statuses.most_common(8)))
for message, count in groups.most_common(5):
    print(f"{{count:6d}}x  {{message}}")
errors = sum(c for lvl, c in levels.items() if lvl != "WARN")
if errors:
    top, top_count = groups.most_common(1)[0]
    span = f" between {{first}} and {{last}}" if first else ""
    print(f"FINDING: {{path.rsplit('/', 1)[-1]}} has {{errors}} error lines{{span}}; the most common "
          f"({{top_count}}x) is: {{top}}")
else:
    print(f"FINDING: {{path.rsplit('/', 1)[-1]}} contains no error lines")
server_errors = sum(c for code, c in statuses.items() if code.startswith("5"))
if server_errors:
    print(f"FINDING: {{server_errors}} responses with HTTP 5xx status in {{path.rsplit('/', 1)[-1]}}")
"""

_JSON = r"""
import json
path = {path}
name = path.rsplit("/", 1)[-1]
raw = open(path, "rb").read()
try:
    doc = json.loads(raw.decode("utf-8"))
except UnicodeDecodeError as exc:
    print(f"FINDING: {{name}} is not valid UTF-8 (byte {{exc.start}})")
except json.JSONDecodeError as exc:
    lines = raw.decode("utf-8").splitlines()
    context = lines[exc.lineno - 1][max(0, exc.colno - 40):exc.colno + 40] if lines else ""
    print(f"invalid JSON near: {{context!r}}")
    print(f"FINDING: {{name}} is not valid JSON: {{exc.msg}} at line {{exc.lineno}}, column {{exc.colno}}")
else:
    kind = type(doc).__name__
    print(f"valid JSON, top-level {{kind}}")
    if isinstance(doc, dict):
        print("keys:", sorted(doc)[:40])
        print(f"FINDING: {{name}} is valid JSON (an object with {{len(doc)}} keys)")
    elif isinstance(doc, list):
        records = [r for r in doc if isinstance(r, dict)]
        keys = sorted({{k for r in records for k in r}})
        missing = {{k: sum(1 for r in records if r.get(k) in (None, "")) for k in keys}}
        missing = {{k: v for k, v in missing.items() if v}}
        print(f"{{len(doc)}} items, {{len(records)}} objects; fields: {{keys[:40]}}")
        if missing:
            print("empty or missing values per field:", missing)
            worst = max(missing, key=missing.get)
            print(f"FINDING: {{name}} has {{len(doc)}} records; field '{{worst}}' is empty or missing in {{missing[worst]}} of them")
        else:
            print(f"FINDING: {{name}} is valid JSON with {{len(doc)}} records and no missing fields")
    else:
        print(f"FINDING: {{name}} is valid JSON (a single {{kind}})")
"""

_CSV = r"""
import collections, csv
path = {path}
name = path.rsplit("/", 1)[-1]
text = open(path, encoding="utf-8", errors="replace", newline="").read()
try:
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
except csv.Error:
    dialect = csv.excel
rows = list(csv.reader(text.splitlines(), dialect))
if not rows:
    print(f"FINDING: {{name}} is empty")
    raise SystemExit
header, body = rows[0], rows[1:]
print(f"delimiter {{dialect.delimiter!r}}; {{len(header)}} columns; {{len(body)}} data rows")
print("columns:", header)
ragged = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
empty = {{h: sum(1 for r in body if i < len(r) and not r[i].strip()) for i, h in enumerate(header)}}
empty = {{h: n for h, n in empty.items() if n}}
dupes = sum(n - 1 for n in collections.Counter(map(tuple, body)).values() if n > 1)
if ragged:
    print(f"rows with a wrong number of fields (line numbers): {{ragged[:10]}}")
    print(f"FINDING: {{name}}: {{len(ragged)}} of {{len(body)}} rows have a different number of fields than the header (first at line {{ragged[0]}})")
if empty:
    print("empty values per column:", empty)
    worst = max(empty, key=empty.get)
    print(f"FINDING: {{name}}: column '{{worst}}' is empty in {{empty[worst]}} of {{len(body)}} rows")
if dupes:
    print(f"FINDING: {{name}}: {{dupes}} duplicate rows")
if not (ragged or empty or dupes):
    print(f"FINDING: {{name}}: {{len(body)}} rows, consistent columns, no empty values or duplicates")
"""

_CONFIG = r"""
import collections, configparser, json, re, tomllib
path = {path}
name = path.rsplit("/", 1)[-1]
text = open(path, encoding="utf-8", errors="replace").read()
findings = []
secret_key = re.compile(r"(pass(word)?|secret|token|api[_-]?key|private[_-]?key)", re.I)
kv = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*(.*?)\s*$")
keys = collections.Counter()
for number, line in enumerate(text.splitlines(), 1):
    if line.lstrip().startswith(("#", ";", "[", "-")):
        continue
    m = kv.match(line)
    if not m:
        continue
    indent = len(line) - len(line.lstrip())
    key, value = m.group(1), m.group(2).strip("\"'")
    keys[(indent, key)] += 1
    if secret_key.search(key) and value and not value.startswith(("${{", "$", "<", "{{")):
        findings.append(f"line {{number}}: '{{key}}' holds a plaintext secret (value not shown)")
    if re.fullmatch(r"(true|yes|on|1)", value, re.I) and key.lower() in ("debug", "debug_mode"):
        findings.append(f"line {{number}}: debug mode is on")
    if re.search(r"\b(localhost|127\.0\.0\.1)\b", value) and not key.lower().startswith("bind"):
        findings.append(f"line {{number}}: '{{key}}' points at localhost")
    if key.lower().endswith("port") and value.isdigit() and not 0 < int(value) < 65536:
        findings.append(f"line {{number}}: '{{key}}' = {{value}} is not a valid port")
    if "\t" in line[:indent] and name.endswith((".yaml", ".yml")):
        findings.append(f"line {{number}}: tab indentation (YAML forbids tabs)")
for (indent, key), count in keys.items():
    if count > 1 and indent == 0:
        findings.append(f"key '{{key}}' is defined {{count}} times (the last one wins)")
parse_error = None
try:
    if name.endswith((".yaml", ".yml")):
        import yaml
        yaml.safe_load(text)
    elif name.endswith(".toml"):
        tomllib.loads(text)
    elif name.endswith(".json"):
        json.loads(text)
    elif name.endswith((".ini", ".cfg", ".conf")) and "[" in text:
        configparser.ConfigParser(strict=False).read_string(text)
except Exception as exc:
    parse_error = f"{{type(exc).__name__}}: {{str(exc).splitlines()[0][:200]}}"
if parse_error:
    findings.insert(0, f"does not parse: {{parse_error}}")
print(f"{{len(text.splitlines())}} lines, {{len(keys)}} settings checked")
for f in findings:
    print(f"FINDING: {{name}}: {{f}}")
if not findings:
    print(f"FINDING: {{name}}: parses cleanly; no common mistakes found")
"""

_BINARY = r"""
f={path}
echo "$(basename "$f"): $(wc -c < "$f") bytes"
file -b "$f"
xxd -l 64 "$f"
echo "FINDING: $(basename "$f") is a binary file ($(file -b "$f" | cut -c1-80)); it needs a human to inspect"
"""

_CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".env", ".properties")


def script_for(attachment: EvidenceFile) -> tuple[str, str, str]:
    """(language, code, purpose) of the script that examines one attachment."""
    name = attachment.name.rsplit("/", 1)[-1].lower()
    path = json.dumps(f"/work/input/{attachment.name}")
    if name.endswith(".json") or attachment.media_type == "application/json":
        return (
            "python",
            _JSON.format(path=path),
            f"Validate {attachment.name} and profile its records",
        )
    if name.endswith(".csv") or attachment.media_type == "text/csv":
        return (
            "python",
            _CSV.format(path=path),
            f"Profile {attachment.name}: shape, ragged rows, gaps, duplicates",
        )
    if name.endswith(_CONFIG_SUFFIXES):
        return (
            "python",
            _CONFIG.format(path=path),
            f"Check {attachment.name} for common configuration mistakes",
        )
    if attachment.media_type.startswith("text/") or name.endswith((".log", ".txt", ".out")):
        return (
            "python",
            _LOG.format(path=path),
            f"Count and group the error lines in {attachment.name}",
        )
    # Paths from archives may hold any printable character: quoted for the shell.
    shell_path = shlex.quote(f"/work/input/{attachment.name}")
    return "bash", _BINARY.format(path=shell_path), f"Identify the binary file {attachment.name}"
