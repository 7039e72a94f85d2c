"""The rendered Kubernetes manifests against the real binaries.

Every Deployment of every overlay is started here the way its image would start it:
the binary its Dockerfile installs, the manifest's own `args` and `env`, a file system
laid out as the image (its runtime stage's COPY lines) plus the pod's volumes (the
rendered ConfigMaps; test values for the Secrets). Only what cannot exist outside a
cluster is changed, and each change is itself a check:

- the listen address becomes a loopback port, after checking that its port is the
  container port the probes, the Service and the NetworkPolicies name;
- a URL naming a Service of the manifests (`http://renderer:8081`) becomes that
  process's loopback address, after checking that the Service exists, has that port,
  and selects that Deployment's pods; other URLs (identity provider, backends) become
  a closed loopback port;
- absolute paths under a volume mount or an image directory are prefixed with the
  pod's directory.

Then: every probe path answers 200 on the port it names, and every pod's metrics on the
port and path its Prometheus annotations name; the whole platform answers a page
through the gateway (origin secret required, renderer reached, the events BFF asked
for the page's data); every environment variable in the manifests is proven
read by the binary; SIGTERM ends each process within its grace period, BFFs turning
unready while they drain; and the grace periods cover the timeouts configured.

Run by infra/ci/check-binaries (after the binaries are built):
    OBERON_INFRA_RENDERED=target/infra/rendered OBERON_BIN_DIR=target/debug \
    OBERON_COMPONENTS_DIR=... pytest infra/tests
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RENDERED = Path(os.environ.get("OBERON_INFRA_RENDERED", REPO / "target/infra/rendered"))
BIN_DIR = Path(os.environ.get("OBERON_BIN_DIR", REPO / "target/debug"))
COMPONENTS = os.environ.get("OBERON_COMPONENTS_DIR")
DOCKER = REPO / "infra/docker"
OVERLAYS = sorted(p.stem for p in RENDERED.glob("*.yaml"))

# What each image (its name before an overlay renames it) is built from, and the
# cargo binary it runs. The Dockerfile must build and install that binary.
IMAGES = {
    "oberon-gateway": ("gateway.Dockerfile", "oberon-gateway"),
    "oberon-renderer": ("renderer.Dockerfile", "oberon-renderer"),
    "events-bff": ("bff.Dockerfile", "events-bff"),
    "checkout-bff": ("bff.Dockerfile", "checkout-bff"),
}

# What a deployment puts in each Secret the manifests use (infra/k8s/README.md), as
# test values. A Secret key the manifests use that is missing here fails the test.
def secret_values(tmp: Path) -> dict[tuple[str, str], str]:
    key = tmp / "assertion-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                   check=True, capture_output=True)
    return {
        ("gateway-assertion-key", "assertion-key.pem"): key.read_text(),
        ("cdn-origin-verify", "secret"): secrets.token_hex(32),
        ("renderer-admin-token", "token"): secrets.token_hex(16),
    }


# ---------------------------------------------------------------------------
# The rendered manifests
# ---------------------------------------------------------------------------

@dataclass
class Manifests:
    overlay: str
    namespace: str
    objects: list[dict]
    image_names: dict[str, str]  # rendered image (without tag) -> base image name

    def of(self, kind: str) -> dict[str, dict]:
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    def configmap(self, name: str) -> dict:
        return self.of("ConfigMap")[name]


def load(overlay: str) -> Manifests:
    objects = [o for o in yaml.safe_load_all((RENDERED / f"{overlay}.yaml").read_text()) if o]
    kustomization = yaml.safe_load(
        (REPO / "infra/k8s/overlays" / overlay / "kustomization.yaml").read_text())
    names = {i.get("newName", i["name"]): i["name"] for i in kustomization.get("images", [])}
    return Manifests(overlay, kustomization["namespace"], objects, names)


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request) -> Manifests:
    return load(request.param)


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container expected"
    return containers[0]


def image_of(m: Manifests, deployment: dict) -> str:
    image = container(deployment)["image"].rsplit("@", 1)[0]
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    base = m.image_names.get(repository, repository)
    assert base in IMAGES, f"{deployment['metadata']['name']}: image {base} is built by no Dockerfile"
    return base


# The container port each listen setting serves: the API (or pages) on `http`, the
# operational endpoints on `ops` (the gateway's and the renderer's `--ops-listen`: their
# /metrics; a BFF's `*_OPS_LISTEN`: its /metrics and probes).
def listen_settings(c: dict) -> dict[str, tuple[str, str]]:
    """Where the container's listen addresses are set, by the container port they
    serve: {"http": ("arg", "--listen"), "ops": ("env", "EVENTS_BFF_OPS_LISTEN")}."""
    found: dict[str, tuple[str, str]] = {}
    if "--listen" in c.get("args", []):
        found["http"] = ("arg", "--listen")
    if "--ops-listen" in c.get("args", []):
        found["ops"] = ("arg", "--ops-listen")
    for e in c.get("env", []):
        if e["name"].endswith("_OPS_LISTEN"):
            found["ops"] = ("env", e["name"])
        elif e["name"].endswith("_LISTEN"):
            found["http"] = ("env", e["name"])
    assert "http" in found, f"{c['name']}: no --listen argument and no *_LISTEN variable"
    return found


def listen_value(c: dict, where: str, name: str) -> str:
    if where == "arg":
        args = c["args"]
        return args[args.index(name) + 1]
    return next(e["value"] for e in c["env"] if e["name"] == name)


def probes(c: dict) -> dict[str, dict]:
    return {k: c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c}


def pre_stop_seconds(c: dict) -> int:
    return c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)


# ---------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------

def test_every_overlay_is_rendered():
    expected = sorted(p.name for p in (REPO / "infra/k8s/overlays").iterdir())
    assert OVERLAYS == expected, f"rendered {OVERLAYS}, overlays {expected}"


def test_listen_port_is_the_port_probes_services_and_policies_name(manifests):
    deployments = manifests.of("Deployment")
    for name, d in deployments.items():
        c = container(d)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        settings = listen_settings(c)
        assert settings.keys() == ports.keys(), f"{name}: listens for {sorted(settings)}, ports {ports}"
        for port_name, (where, setting) in settings.items():
            listen = listen_value(c, where, setting)
            host, _, port = listen.rpartition(":")
            assert host == "0.0.0.0", f"{name}: listens on {listen}: a pod must listen on 0.0.0.0"
            assert ports[port_name] == int(port), (
                f"{name}: {setting} listens on {port}, containerPort {port_name} is {ports}")
        # A BFF's probes are on its operational port; the gateway's and the renderer's
        # on their main one (/_gateway/readyz, /_oberon/readyz), their ops port serving
        # only /metrics.
        probed = "ops" if settings.get("ops", ("", ""))[0] == "env" else "http"
        for kind, probe in probes(c).items():
            assert probe["httpGet"]["port"] in (probed, ports[probed]), f"{name}: {kind} port"
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= probes(c).keys(), name
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    for name, s in manifests.of("Service").items():
        selected = [n for n, l in labels.items() if s["spec"]["selector"].items() <= l.items()]
        assert len(selected) == 1, f"Service {name} selects {selected}"
        ports = {p["name"] for p in container(deployments[selected[0]])["ports"]}
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in ports, f"Service {name}: targetPort {p['targetPort']}"
            # Operational endpoints are never routable: no Service names them.
            assert p["targetPort"] != "ops", f"Service {name} exposes the operational port"
    for name, np in manifests.of("NetworkPolicy").items():
        selected = [n for n, l in labels.items()
                    if np["spec"]["podSelector"].get("matchLabels", {}).items() <= l.items()]
        for rule in np["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                for n in selected:
                    c = container(deployments[n])
                    assert p["port"] in {q["name"] for q in c["ports"]} | {
                        q["containerPort"] for q in c["ports"]}, f"NetworkPolicy {name}: {p} on {n}"
                    ops = {q["containerPort"] for q in c["ports"] if q["name"] == "ops"}
                    if p["port"] not in {"ops"} | ops:
                        continue
                    # The operational port: Prometheus's pods alone, which live in
                    # another namespace; never anywhere, never a pod of the platform.
                    sources = rule.get("from")
                    assert sources, f"NetworkPolicy {name} admits anyone to {n}'s operational port"
                    for s in sources:
                        assert "namespaceSelector" in s and s.get("podSelector"), (
                            f"NetworkPolicy {name} admits {s} to {n}'s operational port: "
                            "only Prometheus's pods (namespace and pod selector) may reach it")
                        assert s["namespaceSelector"]["matchLabels"].get(
                            "kubernetes.io/metadata.name") != manifests.namespace, (
                            f"NetworkPolicy {name} admits platform pods to {n}'s operational port")


def test_pods_are_annotated_for_prometheus(manifests):
    """Prometheus's pod discovery (infra/observability/prometheus/prometheus.yaml)
    scrapes the annotated port and path: the ops port, /metrics."""
    for name, d in manifests.of("Deployment").items():
        annotations = d["spec"]["template"]["metadata"].get("annotations", {})
        ops = {p["name"]: p["containerPort"] for p in container(d)["ports"]}.get("ops")
        assert ops, f"{name}: no container port named ops"
        assert annotations.get("prometheus.io/scrape") == "true", f"{name}: not scraped"
        assert annotations.get("prometheus.io/port") == str(ops), (
            f"{name}: prometheus.io/port {annotations.get('prometheus.io/port')}, ops is {ops}")
        assert annotations.get("prometheus.io/path") == "/metrics", f"{name}: prometheus.io/path"


def selected_by(selector: dict, labels: dict[str, dict]) -> set[str]:
    return {n for n, l in labels.items() if selector.get("matchLabels", {}).items() <= l.items()}


def test_network_policies_admit_only_the_platform(manifests):
    """Who may open a connection to whom, as the policies say (ingress is denied by
    default): the gateway from anywhere, the renderer from the gateway, a BFF from the
    gateway and the renderer; and every egress port is one the target listens on."""
    deployments = manifests.of("Deployment")
    labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    policies = manifests.of("NetworkPolicy").values()
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
               and p["spec"]["policyTypes"] == ["Ingress"] for p in policies), "no default deny"
    admitted: dict[str, set[str]] = {n: set() for n in deployments}
    for p in policies:
        for target in selected_by(p["spec"]["podSelector"], labels):
            for rule in p["spec"].get("ingress", []):
                # A source with a namespace selector is another namespace's (Prometheus).
                sources = rule.get("from")
                admitted[target] |= ({"anywhere"} if sources is None else
                                     set().union(*(selected_by(s["podSelector"], labels) for s in sources
                                                   if "namespaceSelector" not in s)))
        for rule in p["spec"].get("egress", []):
            for to in rule.get("to", []):
                if "namespaceSelector" in to:
                    continue  # DNS, outside the manifests
                for n in selected_by(to["podSelector"], labels):
                    listening = {q["containerPort"] for q in container(deployments[n])["ports"]}
                    for port in rule["ports"]:
                        assert port["port"] in listening, f"{p['metadata']['name']}: egress {port} to {n}"
    binaries = {n: IMAGES[image_of(manifests, d)][1] for n, d in deployments.items()}
    names = {b: n for n, b in binaries.items()}
    for n, b in binaries.items():
        if b == "oberon-gateway":
            expected = {"anywhere"}
        elif b == "oberon-renderer":
            expected = {names["oberon-gateway"]}
        else:
            expected = {names["oberon-gateway"], names["oberon-renderer"]}
        assert admitted[n] == expected, f"{n} is reachable from {sorted(admitted[n])}"


def test_images_run_the_binaries_their_dockerfiles_build(manifests):
    for name, d in manifests.of("Deployment").items():
        dockerfile, binary = IMAGES[image_of(manifests, d)]
        text = (DOCKER / dockerfile).read_text()
        build = re.search(r"cargo build [^\n]*--bin (\S+)", text)
        assert build, f"{dockerfile}: no `cargo build --bin`"
        # bff.Dockerfile builds the binary named by its BFF build argument.
        assert build.group(1).strip('"') in (binary, "${BFF}"), f"{dockerfile} builds {build.group(1)}"
        assert (BIN_DIR / binary).is_file(), f"{BIN_DIR / binary} not built"
        assert "command" not in container(d), f"{name}: the image's ENTRYPOINT is the binary"


def test_configmaps_are_generated_whole_from_the_site(manifests):
    cms = manifests.of("ConfigMap")
    by_base = {re.sub(r"-[a-z0-9]{10}$", "", n): n for n in cms}
    for base, name in by_base.items():
        assert name != base, f"ConfigMap {name} has no content hash: pods would not roll"
    for directory, cm in (("pages", "renderer-pages"), ("layouts", "renderer-layouts")):
        files = {p.name: p.read_text() for p in (REPO / "demo" / directory).iterdir()}
        assert cms[by_base[cm]]["data"] == files, f"{cm} is not demo/{directory}"
    assert cms[by_base["renderer-site"]]["data"] == {"site.toml": (REPO / "demo/site.toml").read_text()}
    for name, d in manifests.of("Deployment").items():
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in v:
                assert v["configMap"]["name"] in cms, f"{name}: volume {v['name']} names no ConfigMap"


def test_grace_periods_cover_the_configured_timeouts(manifests):
    deployments = manifests.of("Deployment")
    for name, d in deployments.items():
        spec = d["spec"]["template"]["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        c = container(d)
        binary = IMAGES[image_of(manifests, d)][1]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if binary == "oberon-gateway":
            config = tomllib.loads(mounted_file(manifests, d, c["args"][c["args"].index("--config") + 1]))
            longest = max([config["limits"]["upstream_timeout_ms"]]
                          + [r.get("timeout_ms", 0) for r in config["routes"]]) / 1000
        elif binary == "oberon-renderer":
            site = tomllib.loads(mounted_file(manifests, d, c["args"][c["args"].index("--site") + 1] + "/site.toml"))
            longest = site["limits"]["page_deadline_ms"] / 1000
        else:
            prefix = binary.upper().replace("-", "_") + "_"
            longest = (int(env[prefix + "DRAIN_MS"]) + int(env[prefix + "BACKEND_TIMEOUT_MS"])) / 1000
        needed = pre_stop_seconds(c) + longest
        assert grace >= needed + 1, f"{name}: terminationGracePeriodSeconds {grace} < {needed} + 1"


def mounted_file(m: Manifests, deployment: dict, path: str) -> str:
    """The content a container sees at `path`, from the rendered ConfigMap volumes."""
    c = container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in c.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        data = m.configmap(volume["configMap"]["name"])["data"]
        if "subPath" in mount and path == mount["mountPath"]:
            return data[mount["subPath"]]
        if path.startswith(mount["mountPath"] + "/"):
            return data[path[len(mount["mountPath"]) + 1:]]
    raise AssertionError(f"{path} is in no ConfigMap volume")


# ---------------------------------------------------------------------------
# The platform, started from the manifests
# ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A loopback port nothing listens on: where URLs outside the manifests go.
CLOSED = "http://127.0.0.1:9"


@dataclass
class Pod:
    name: str
    binary: Path
    root: Path
    ports: dict[str, int]  # container port name -> loopback port
    args: list[str]
    env: dict[str, str]
    grace: int
    pre_stop: int
    probes: dict[str, tuple[str, str]]  # kind -> (path, port name)
    process: subprocess.Popen | None = None
    log: Path | None = None
    proven_env: set[str] = field(default_factory=set)
    manifest_env: set[str] = field(default_factory=set)

    def url(self, path: str = "", port: str = "http") -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def probe_url(self, kind: str) -> str:
        path, port = self.probes[kind]
        return self.url(path, port)


class Platform:
    """Every Deployment of an overlay as a local process, wired as the manifests say."""

    def __init__(self, m: Manifests, tmp: Path):
        self.m = m
        self.tmp = tmp
        self.secrets = secret_values(tmp)
        deployments = m.of("Deployment")
        self.ports = {name: {p["name"]: free_port() for p in container(d)["ports"]}
                      for name, d in deployments.items()}
        labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
        # (service host, port) -> the loopback port of the Deployment it selects.
        self.services: dict[tuple[str, int], int] = {}
        for name, s in m.of("Service").items():
            selected = [n for n, l in labels.items() if s["spec"]["selector"].items() <= l.items()]
            for p in s["spec"]["ports"]:
                self.services[(name, p["port"])] = self.ports[selected[0]][p["targetPort"]]
        self.pods = {name: self.pod(name, d) for name, d in deployments.items()}

    def rewrite_urls(self, text: str, where: str) -> str:
        def one(match: re.Match) -> str:
            host, port = match.group("host"), int(match.group("port") or 80)
            short = host.split(".")[0]
            ours = "." not in host or host.startswith(f"{short}.{self.m.namespace}.svc")
            if not ours:
                return CLOSED
            assert (short, port) in self.services, (
                f"{where}: {match.group(0)} names no Service port of the manifests")
            return f"http://127.0.0.1:{self.services[(short, port)]}"
        return re.sub(r"https?://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?", one, text)

    def pod(self, name: str, d: dict) -> Pod:
        c = container(d)
        spec = d["spec"]["template"]["spec"]
        dockerfile, binary = IMAGES[image_of(self.m, d)]
        root = self.tmp / name
        prefixes = self.lay_out_image(root, dockerfile) + self.mount_volumes(root, c, spec)

        def in_pod(path: str) -> bool:
            # A path the pod has: a mount or image path, inside one, or a parent of one.
            return any(path == p or p.startswith(path.rstrip("/") + "/") or path.startswith(p + "/")
                       for p in prefixes)

        def localise(text: str, where: str) -> str:
            text = self.rewrite_urls(text, where)
            return re.sub(r'(^|["\s=])(/[A-Za-z0-9._/-]+)',
                          lambda m: m.group(1) + (f"{root}{m.group(2)}" if in_pod(m.group(2))
                                                  else m.group(2)), text)

        # Config files in the pod's volumes get the same treatment as args.
        for f in root.rglob("*"):
            if f.is_file() and not f.is_symlink() and f.suffix in (".toml",):
                f.write_text(localise(f.read_text(), str(f.relative_to(root))))

        ports = self.ports[name]
        settings = listen_settings(c)
        args = list(c.get("args", []))
        for port_name, (where, setting) in settings.items():
            if where == "arg":
                args[args.index(setting) + 1] = f"127.0.0.1:{ports[port_name]}"
        args = [localise(a, f"{name} args") for a in args]
        env, manifest_env = {}, set()
        for e in c.get("env", []):
            manifest_env.add(e["name"])
            if "value" in e:
                env[e["name"]] = localise(e["value"], f"{name} env {e['name']}")
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secret(ref["name"], ref["key"], name)
        for port_name, (where, setting) in settings.items():
            if where == "env":
                env[setting] = f"127.0.0.1:{ports[port_name]}"
        named = {q["containerPort"]: q["name"] for q in c["ports"]}
        paths = {k: (p["httpGet"]["path"], named.get(p["httpGet"]["port"], p["httpGet"]["port"]))
                 for k, p in probes(c).items()}
        return Pod(name, BIN_DIR / binary, root, ports, args, env,
                   spec["terminationGracePeriodSeconds"], pre_stop_seconds(c), paths,
                   manifest_env=manifest_env)

    def secret(self, secret: str, key: str, who: str) -> str:
        assert (secret, key) in self.secrets, (
            f"{who} uses Secret {secret} key {key}, which infra/tests does not know (add a test value)")
        return self.secrets[(secret, key)]

    def lay_out_image(self, root: Path, dockerfile: str) -> list[str]:
        """The runtime stage's COPY lines, under `root`; returns the image paths."""
        text = (DOCKER / dockerfile).read_text()
        runtime = text[text.rindex("\nFROM "):]
        prefixes = []
        for line in runtime.splitlines():
            parts = shlex.split(line) if line.startswith("COPY ") else []
            if not parts:
                continue
            src, dest = parts[-2], parts[-1]
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if "--from=components" in parts:
                assert COMPONENTS, "OBERON_COMPONENTS_DIR: the installed components"
                target.symlink_to(COMPONENTS)
            elif "--from=build" in parts:
                continue  # the binary: run from BIN_DIR
            elif (REPO / src).is_dir():
                subprocess.run(["cp", "-R", str(REPO / src), str(target)], check=True)
            else:
                target.write_bytes((REPO / src).read_bytes())
            prefixes.append(dest.rstrip("/"))
        return prefixes

    def mount_volumes(self, root: Path, c: dict, spec: dict) -> list[str]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        prefixes = []
        for mount in c.get("volumeMounts", []):
            v = volumes[mount["name"]]
            files: dict[str, str] = {}
            if "configMap" in v:
                files = dict(self.m.configmap(v["configMap"]["name"])["data"])
            sources = v.get("projected", {}).get("sources", [])
            if "secret" in v:
                sources = [{"secret": {"name": v["secret"]["secretName"], **v["secret"]}}]
            for s in sources:
                sec = s["secret"]
                for item in sec["items"]:
                    files[item["path"]] = self.secret(sec["name"], item["key"], c["name"])
            target = root / mount["mountPath"].lstrip("/")
            if "subPath" in mount:
                if target.is_dir():
                    subprocess.run(["rm", "-rf", str(target)], check=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(files[mount["subPath"]])
            else:
                if target.exists():  # the volume hides what the image has there
                    subprocess.run(["rm", "-rf", str(target)], check=True)
                target.mkdir(parents=True)
                for key, content in files.items():
                    (target / key).write_text(content)
            prefixes.append(mount["mountPath"])
        return prefixes

    def start(self):
        for pod in self.pods.values():
            pod.log = self.tmp / f"{pod.name}.log"
            pod.process = subprocess.Popen(
                [str(pod.binary), *pod.args],
                env={"PATH": os.environ.get("PATH", ""), **pod.env},
                stdout=pod.log.open("w"), stderr=subprocess.STDOUT)
        for pod in self.pods.values():
            self.wait_ready(pod)

    def wait_ready(self, pod: Pod):
        # The startup probe's budget, as the kubelet would give it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if pod.process.poll() is not None:
                pytest.fail(f"{pod.name} exited {pod.process.returncode}:\n{pod.log.read_text()}")
            if get(pod.probe_url("startupProbe"))[0] == 200:
                return
            time.sleep(0.2)
        pytest.fail(f"{pod.name} never passed its startup probe:\n{pod.log.read_text()}")

    def stop(self):
        for pod in self.pods.values():
            if pod.process and pod.process.poll() is None:
                pod.process.kill()
                pod.process.wait()


def get(url: str, headers: dict | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()
    except OSError:
        return 0, {}, ""


@pytest.fixture(scope="module")
def platform(manifests, tmp_path_factory):
    p = Platform(manifests, tmp_path_factory.mktemp(manifests.overlay))
    try:
        p.start()
        yield p
    finally:
        p.stop()


def by_binary(platform: Platform, binary: str) -> Pod:
    pods = [p for p in platform.pods.values() if p.binary.name == binary]
    assert len(pods) == 1, f"one {binary} expected"
    return pods[0]


def test_every_probe_answers_200(platform):
    for pod in platform.pods.values():
        for kind in pod.probes:
            status, _, body = get(pod.probe_url(kind))
            assert status == 200, f"{pod.name} {kind} {pod.probes[kind]}: {status} {body}"


def test_a_page_goes_through_gateway_renderer_and_bff(platform):
    gateway = by_binary(platform, "oberon-gateway")
    renderer = by_binary(platform, "oberon-renderer")
    events = by_binary(platform, "events-bff")
    origin = platform.secrets[("cdn-origin-verify", "secret")]
    # Around the CDN: refused ([origin] secret_file, from the Secret volume).
    status, _, _ = get(gateway.url("/events/42"))
    assert status == 403
    # Through it: the renderer answers (Server-Timing is the renderer's), having asked
    # the events BFF for the page's data ({bff.events} is --bff events=...).
    status, headers, body = get(gateway.url("/events/42"), {"X-Origin-Verify": origin})
    assert status in (200, 503) and "server-timing" in {k.lower() for k in headers}, (
        f"{status} {headers} {body}")
    _, _, metrics = get(events.url("/metrics", "ops"))
    assert 'oberon_http_server_request_duration_seconds_count{http_route="/v1/events/{id}"' in metrics, metrics
    # An API route reaches the BFF itself (its own 404 for an unknown path is JSON),
    # and through it nothing operational: those live on a port no Service names.
    for path in ("nowhere", "metrics", "readyz", "livez", "openapi.json"):
        status, headers, _ = get(gateway.url(f"/api/events/{path}"), {"X-Origin-Verify": origin})
        assert status == 404 and "json" in headers.get("content-type", ""), (path, headers)
    # The JWKS the renderer and the BFFs are pointed at is the gateway's.
    status, _, jwks = get(gateway.url("/.well-known/oberon/jwks.json"))
    assert status == 200 and '"OKP"' in jwks
    assert renderer.process.poll() is None


def test_every_pod_serves_metrics_where_its_annotations_say(platform):
    for pod in platform.pods.values():
        d = platform.m.of("Deployment")[pod.name]
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        named = {q["containerPort"]: q["name"] for q in container(d)["ports"]}
        port = named[int(annotations["prometheus.io/port"])]
        status, _, body = get(pod.url(annotations["prometheus.io/path"], port))
        assert status == 200, f"{pod.name}: {annotations} answers {status} {body}"


def test_every_environment_variable_is_read(platform):
    renderer = by_binary(platform, "oberon-renderer")
    token = renderer.env.get("OBERON_ADMIN_TOKEN")
    if token is not None:
        body = b'{"mode": "auto"}'
        ok, _, _ = get(renderer.url("/_oberon/mode"), {"Authorization": f"Bearer {token}"}, "POST", body)
        bad, _, _ = get(renderer.url("/_oberon/mode"), {"Authorization": "Bearer nope"}, "POST", body)
        assert (ok, bad) == (200, 401), "OBERON_ADMIN_TOKEN is not the renderer's admin token"
        renderer.proven_env.add("OBERON_ADMIN_TOKEN")
    for pod in platform.pods.values():
        if pod.binary.name in ("oberon-gateway", "oberon-renderer"):
            continue
        # A BFF validates its whole environment at start and names every variable it
        # refuses: given nonsense in each, it must name each.
        nonsense = {k: "not valid \u0001" for k in pod.env}
        run = subprocess.run([str(pod.binary)], env={"PATH": os.environ.get("PATH", ""), **nonsense},
                             capture_output=True, text=True, timeout=30)
        assert run.returncode != 0, f"{pod.name} started with nonsense in every variable"
        for name in pod.env:
            if re.search(rf"\b{re.escape(name)}\b", run.stderr + run.stdout):
                pod.proven_env.add(name)
    for pod in platform.pods.values():
        unread = pod.manifest_env - pod.proven_env
        assert not unread, f"{pod.name}: the manifests set {sorted(unread)}, which it does not read"


def test_sigterm_ends_each_within_its_grace_period(platform):
    started = time.monotonic()
    for pod in platform.pods.values():
        pod.process.send_signal(signal.SIGTERM)
    for pod in platform.pods.values():
        if pod.binary.name.endswith("-bff"):
            # Draining: still alive, no longer ready, so load balancers move away.
            deadline = time.monotonic() + 1
            while (status := get(pod.probe_url("readinessProbe"))[0]) == 200:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert status == 503, f"{pod.name}: readiness {status} while draining"
    for pod in platform.pods.values():
        # The kubelet runs preStop before the signal: the process has what is left.
        budget = pod.grace - pod.pre_stop
        remaining = budget - (time.monotonic() - started)
        try:
            pod.process.wait(timeout=max(remaining, 0.1))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{pod.name} still running {budget} s after SIGTERM")
        assert pod.process.returncode == 0, f"{pod.name} exited {pod.process.returncode}"
