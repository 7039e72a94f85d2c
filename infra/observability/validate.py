"""The checks of infra/observability/check that promtool does not make by itself.

    validate.py config WORKDIR      prometheus.yaml, through promtool check config
    validate.py names               every metric name and label of the rules and tests
    validate.py dashboard WORKDIR   the Grafana dashboard, its expressions through promtool

Every metric a rule, a test or the dashboard names must be one of docs/observability.md
(a histogram as its _bucket, _sum and _count), a recording rule of rules/, or one of
OUTSIDE; every label a selector matches must be one that metric has (or one the scrape
configuration adds). Each problem is printed naming its panel, rule or test, and the
exit status is 1 if there was any.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOC = REPO / "docs/observability.md"
RULES = sorted((HERE / "prometheus/rules").glob("*.yaml"))
TESTS = sorted((HERE / "prometheus/tests").glob("*.yaml"))
CONFIG = HERE / "prometheus/prometheus.yaml"
DASHBOARD = HERE / "grafana/oberon-fleet.json"
RUNBOOK = HERE / "RUNBOOK.md"
K8S_BASE = REPO / "infra/k8s/base"

# Labels every scraped series gets from prometheus.yaml (`bff` on the bff job only).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "bff"}
# Metrics from outside docs/observability.md, with why: Prometheus's own `up`, and
# prometheus_varnish_exporter's where Varnish is self-hosted (the CDN offload panel).
OUTSIDE = {
    "up": TARGET_LABELS,
    "varnish_main_cache_hit": None,   # None: its labels are the exporter's business
    "varnish_main_cache_miss": None,
}
SEVERITIES = {"page", "ticket"}
# PromQL words that are neither metrics nor functions.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Grafana's interval variables, as a duration promtool accepts.
GRAFANA_INTERVALS = ("__rate_interval", "__interval", "__range")

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def finish(done: str) -> None:
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(done)


# ---------------------------------------------------------------------------
# The catalogue: docs/observability.md's tables
# ---------------------------------------------------------------------------

def catalogue() -> dict[str, set[str]]:
    """Series name -> its labels, from every table row naming an `oberon_` metric."""
    series: dict[str, set[str]] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`oberon_[a-z0-9_]+`", cells[0]):
            continue
        name, kind = cells[0].strip("`"), cells[1]
        # Label names are the backticked words outside parentheses (which list values).
        labels = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
        if kind.startswith("histogram"):
            for suffix in ("_sum", "_count"):
                series.setdefault(name + suffix, set()).update(labels)
            series.setdefault(name + "_bucket", set()).update(labels | {"le"})
        else:
            series.setdefault(name, set()).update(labels)
    if not series:
        problem(str(DOC.relative_to(REPO)), "no `oberon_` metric found in its tables")
    return {n: l | TARGET_LABELS for n, l in series.items()}


# ---------------------------------------------------------------------------
# A small PromQL reader: enough to find metric names, matchers and grouping labels
# (promtool, run on every expression too, is the parser that decides validity)
# ---------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>[0-9][0-9a-zA-Z.]*|\.[0-9]+)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<punct>=~|!~|!=|==|<=|>=|[-+*/%^(){}\[\],=<>@])
""", re.VERBOSE)


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def selectors(expr: str) -> tuple[list[tuple[str | None, list[str]]], set[str]]:
    """([(metric name or None, [matched label names])], grouping label names)."""
    ts = tokens(expr)
    found, grouping, i = [], set(), 0
    while i < len(ts):
        kind, text = ts[i]
        nxt = ts[i + 1][1] if i + 1 < len(ts) else None
        if kind == "ident" and text in GROUPING and nxt == "(":
            j = i + 2
            while ts[j][1] != ")":
                if ts[j][0] == "ident":
                    grouping.add(ts[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and (nxt in ("(", "by", "without") or text.lower() in KEYWORDS):
            i += 1  # a function, an aggregation (`sum by (x) (...)` too) or a keyword
            continue
        if (kind == "ident") or (kind == "punct" and text == "{"):
            name = text if kind == "ident" else None
            j = i + 1 if kind == "ident" else i
            labels = []
            if j < len(ts) and ts[j][1] == "{":
                j += 1
                while ts[j][1] != "}":
                    if ts[j][0] == "ident" and ts[j + 1][1] in ("=", "!=", "=~", "!~"):
                        if ts[j][1] == "__name__" and ts[j + 1][1] == "=":
                            name = ts[j + 2][1][1:-1]
                        else:
                            labels.append(ts[j][1])
                    j += 1
                j += 1
            found.append((name, labels))
            i = j
            continue
        i += 1
    return found, grouping


def check_expr(where: str, expr: str, known: dict[str, set[str] | None],
               recorded: set[str]) -> None:
    """Every metric known, every matcher's label one that metric has, every grouping
    label one of the metrics involved has (when all of them are the catalogue's)."""
    try:
        found, grouping = selectors(expr)
    except (ValueError, IndexError) as e:
        problem(where, f"cannot read the expression ({e}): {expr}")
        return
    involved: set[str] = set()
    only_catalogue = True
    for name, labels in found:
        if name is None:
            problem(where, "a selector without a metric name")
            continue
        if name not in known:
            problem(where, f"unknown metric `{name}`: not in docs/observability.md, "
                           "not a recording rule, not allow-listed (validate.py OUTSIDE)")
            only_catalogue = False
            continue
        allowed = known[name]
        if allowed is None or name in recorded or name in OUTSIDE:
            only_catalogue = False
        if allowed is None:
            continue
        involved |= allowed
        for label in labels:
            if label not in allowed:
                problem(where, f"`{name}` has no label `{label}` (it has {', '.join(sorted(allowed))})")
    if only_catalogue and found:
        for label in grouping - involved:
            problem(where, f"groups by `{label}`, which none of its metrics has")


def recording_rules() -> dict[str, set[str]]:
    """Recorded name -> the labels it keeps (its grouping labels, and the labels its
    rule sets)."""
    recorded: dict[str, set[str]] = {}
    for f in RULES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    _, grouping = selectors(rule["expr"])
                    recorded[rule["record"]] = grouping | set(rule.get("labels", {}))
    return recorded


def known_metrics() -> tuple[dict[str, set[str] | None], set[str]]:
    recorded = recording_rules()
    known: dict[str, set[str] | None] = {**catalogue(), **OUTSIDE, **recorded}
    return known, set(recorded)


# ---------------------------------------------------------------------------
# Rules and tests
# ---------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def check_names() -> None:
    known, recorded = known_metrics()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)}
    alerts: dict[str, str] = {}
    for f in RULES:
        rel = f.relative_to(REPO)
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                where = f"{rel}: group {group['name']}, rule {name}"
                check_expr(where, rule["expr"], known, recorded)
                if "alert" not in rule:
                    continue
                alerts[name] = where
                if rule.get("labels", {}).get("severity") not in SEVERITIES:
                    problem(where, f"label severity must be one of {sorted(SEVERITIES)}")
                annotations = rule.get("annotations", {})
                for key in ("summary", "description", "runbook_url"):
                    if not annotations.get(key):
                        problem(where, f"no {key} annotation")
                url = annotations.get("runbook_url", "")
                path, _, anchor = url.partition("#")
                if not path.endswith("infra/observability/RUNBOOK.md") or anchor not in anchors:
                    problem(where, f"runbook_url {url!r} names no section of {RUNBOOK.relative_to(REPO)}")
    fired: set[str] = set()
    for f in TESTS:
        rel = f.relative_to(REPO)
        for test in yaml.safe_load(f.read_text())["tests"]:
            for s in test.get("input_series", []):
                check_expr(f"{rel}: test {test['name']!r}, series {s['series']}", s["series"],
                           known, recorded)
            for t in test.get("alert_rule_test", []):
                if t["alertname"] not in alerts:
                    problem(f"{rel}: test {test['name']!r}", f"no alert {t['alertname']}")
                if t.get("exp_alerts"):
                    fired.add(t["alertname"])
    for name, where in alerts.items():
        if name not in fired:
            problem(where, "no test in prometheus/tests expects it to fire")
    finish(f"names: {len(alerts)} alerts and {len(recorded)} recording rules use only catalogued "
           f"metrics and labels; every alert has a runbook section and a test that fires it")


# ---------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------

def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))
    return out


def check_dashboard(work: Path) -> None:
    rel = DASHBOARD.relative_to(REPO)
    try:
        dash = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        problem(str(rel), f"not JSON: {e}")
        finish("")
    if dash.get("schemaVersion", 0) < 39:
        problem(str(rel), f"schemaVersion {dash.get('schemaVersion')}: 39 or later")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(str(rel), "no template variable `datasource` of type datasource, query prometheus")
    known, recorded = known_metrics()

    def substitute(where: str, expr: str) -> str:
        def one(m: re.Match) -> str:
            name = m.group(1) or m.group(2) or m.group(3)
            if name in GRAFANA_INTERVALS:
                return "5m"
            if name not in variables:
                problem(where, f"uses ${name}, which is no template variable")
                return ".*"
            # Multi-value variables stand in regex matchers: any value matches.
            return ".*" if variables[name].get("multi") or variables[name].get("includeAll") else "x"
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)

    for name, v in variables.items():
        if v.get("type") == "query":
            query = v.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            m = re.fullmatch(r"\s*label_values\((?:(.+),\s*)?(\w+)\)\s*", query)
            if not m:
                problem(f"{rel}: variable {name}", f"query {query!r} is not label_values(...)")
            elif m.group(1):
                check_expr(f"{rel}: variable {name}", m.group(1), known, recorded)
    ids: dict[int, str] = {}
    groups = []
    panels = all_panels(dash.get("panels", []))
    for p in panels:
        title = p.get("title", "").strip()
        where = f"{rel}: panel {p.get('id')} {title!r}"
        if not title:
            problem(where, "no title")
        if not isinstance(p.get("id"), int):
            problem(where, "no numeric id")
        elif p["id"] in ids:
            problem(where, f"id {p['id']} is also panel {ids[p['id']]!r}'s")
        else:
            ids[p["id"]] = title
        if p.get("type") == "row":
            continue
        for owner in [p] + p.get("targets", []):
            d = owner.get("datasource", {})
            if d != {"type": "prometheus", "uid": "${datasource}"}:
                problem(where, f"datasource {d}: must be the ${{datasource}} variable")
        if not p.get("targets"):
            problem(where, "no query")
        for t in p.get("targets", []):
            at = f"{where} target {t.get('refId')}"
            expr = t.get("expr", "").strip()
            if not expr:
                problem(at, "empty expr")
                continue
            expr = substitute(at, expr)
            check_expr(at, expr, known, recorded)
            # One group per target, named after it: promtool's error names the group.
            groups.append({"name": at, "rules": [
                {"record": f"dashboard:panel_{p['id']}_{t.get('refId')}", "expr": expr}]})
    rules = work / "dashboard-exprs.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    run = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    if run.returncode != 0:
        problem(str(rel), "promtool rejects expressions (each group is a panel's target):\n"
                + run.stdout + run.stderr)
    finish(f"dashboard: {len(panels)} panels with unique ids and titles, {len(groups)} "
           "expressions parsed by promtool, their metrics and labels catalogued")


# ---------------------------------------------------------------------------
# The scrape configuration
# ---------------------------------------------------------------------------

# Debian's Prometheus is built without Kubernetes discovery (its NEWS.Debian, 1.5.0:
# the client library's dependencies), so its promtool refuses `kubernetes_sd_configs`.
# Then the blocks are checked here against Prometheus's documented fields and pod
# meta labels, and promtool checks the rest with them swapped for static targets.
K8S_SD_FIELDS = {"role", "namespaces", "selectors", "api_server", "kubeconfig_file",
                 "attach_metadata", "basic_auth", "authorization", "oauth2", "tls_config",
                 "proxy_url", "follow_redirects", "enable_http2"}
K8S_POD_META = re.compile(r"__meta_kubernetes_(namespace|pod_(name|ip|uid|ready|phase|node_name|"
                          r"host_ip|controller_kind|controller_name|container_(init|name|id|image|"
                          r"port_name|port_number|port_protocol)|(label|labelpresent|annotation|"
                          r"annotationpresent)_[a-zA-Z0-9_]+))")


def sanitise(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def base_pods() -> list[dict]:
    """The pod templates of infra/k8s/base's Deployments."""
    pods = []
    for f in sorted(K8S_BASE.glob("*.yaml")):
        for o in yaml.safe_load_all(f.read_text()):
            if o and o.get("kind") == "Deployment":
                pods.append(o["spec"]["template"]["metadata"] | {"name": o["metadata"]["name"]})
    return pods


def check_config(work: Path) -> None:
    rel = CONFIG.relative_to(REPO)
    run = subprocess.run(["promtool", "check", "config", str(CONFIG)], capture_output=True, text=True)
    if run.returncode == 0:
        print(run.stdout.strip())
    elif "field kubernetes_sd_configs not found" not in run.stdout + run.stderr:
        problem(str(rel), "promtool check config:\n" + run.stdout + run.stderr)
    else:
        config = yaml.safe_load(CONFIG.read_text())
        pods = base_pods()
        for job in config["scrape_configs"]:
            where = f"{rel}: job {job['job_name']}"
            for sd in job.pop("kubernetes_sd_configs", []):
                if set(sd) - K8S_SD_FIELDS:
                    problem(where, f"kubernetes_sd_configs: unknown fields {sorted(set(sd) - K8S_SD_FIELDS)}")
                if sd.get("role") != "pod":
                    problem(where, f"kubernetes_sd_configs role {sd.get('role')!r}: the jobs discover pods")
                if set(sd.get("namespaces", {})) - {"names", "own_namespace"}:
                    problem(where, "kubernetes_sd_configs namespaces: names or own_namespace only")
                job.setdefault("static_configs", []).append({"targets": ["127.0.0.1:9090"]})
            # Which base pods this job keeps, as its keep rules on pod meta labels say.
            kept = pods
            for r in job.get("relabel_configs", []):
                for label in r.get("source_labels", []):
                    if label.startswith("__meta_kubernetes_") and not K8S_POD_META.fullmatch(label):
                        problem(where, f"{label} is no meta label of Kubernetes pod discovery")
                if r.get("action") != "keep" or len(r.get("source_labels", [])) != 1:
                    continue
                m = re.fullmatch(r"__meta_kubernetes_pod_(label|annotation)_(\w+)", r["source_labels"][0])
                if m:
                    kind = "labels" if m.group(1) == "label" else "annotations"
                    kept = [p for p in kept if any(
                        sanitise(k) == m.group(2) and re.fullmatch(r.get("regex", "(.*)"), v)
                        for k, v in p.get(kind, {}).items())]
            if not kept:
                problem(where, "keeps none of the pods of infra/k8s/base")
            print(f"{where}: keeps {', '.join(p['name'] for p in kept) or 'nothing'}")
        config["rule_files"] = [str(CONFIG.parent / f) for f in config.get("rule_files", [])]
        swapped = work / "prometheus.yaml"
        swapped.write_text(yaml.safe_dump(config, sort_keys=False))
        run = subprocess.run(["promtool", "check", "config", str(swapped)], capture_output=True, text=True)
        if run.returncode != 0:
            problem(str(rel), "promtool check config (Kubernetes discovery swapped for static "
                    "targets):\n" + run.stdout + run.stderr)
        else:
            print(f"{rel}: promtool check config passes with kubernetes_sd_configs swapped for static "
                  "targets (this promtool has no Kubernetes discovery); those blocks checked here")
    finish("config: valid")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "config":
        check_config(Path(sys.argv[2]))
    elif command == "names":
        check_names()
    elif command == "dashboard":
        check_dashboard(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
