"""Grader of lab 3 / retrain-job (exercises/lab3/k8s_job.py): the retraining Job, as the cluster sees it.

No cluster: the Job `build_retrain_job` returns is validated against the schemas of the pinned
Kubernetes version (kubernetes-validate, strict: an unknown or misspelt field is an error), run
through the policy engine the repository's manifest tests apply (mlops_lab.cluster.policy), and
read field by field for what a cluster would do with it: retries, deadline and clean-up, the
restricted pod, secrets by reference, the CPU Job and the GPU Job.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
from pydantic import SecretStr

from mlops_lab.cluster.policy import node_version, violations
from mlops_lab.pipeline import k8s_job as ref
from mlops_lab.settings import Settings, child_env

IMAGE = "mlops-lab:9.9.9-lab"
PASSWORD, TOKEN = "pa55-w0rd-in-url", "t0ken-never-inline"
SETTINGS = Settings(
    k8s_image=IMAGE,
    k8s_namespace="retrain-lab",
    model_device="auto",
    model_name="fraud-lab",
    store_url=f"postgresql+psycopg://mlops:{PASSWORD}@postgres:5432/mlops",
    admin_token=SecretStr(TOKEN),
)
CUDA = SETTINGS.model_copy(update={"model_device": "cuda"})
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SHARED = ("RESOURCES", "INIT_RESOURCES", "SECURITY", "POD_SECURITY", "LABELS", "MOUNTS", "SECRET_ENV")
GPU = ref.GPU_RESOURCE


@pytest.fixture(autouse=True)
def shared_constants() -> Iterator[None]:
    """Put back the constants every Job is built from, should an implementation change them: one
    check's mistake must not fail (or pass) the next check."""
    saved = {name: copy.deepcopy(getattr(ref, name)) for name in SHARED}
    yield
    for name, value in saved.items():
        current = getattr(ref, name)
        if current == value:
            continue
        current.clear()
        if isinstance(current, dict):
            current.update(value)
        else:
            current.extend(value)


def build(impl: ModuleType, settings: Settings = SETTINGS, reason: str = "drift on amount", **kw: Any) -> Any:
    return impl.build_retrain_job(settings, reason, **kw)


def pod(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"])


def containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers, then the containers."""
    p = pod(job)
    return [*p.get("initContainers", []), *p.get("containers", [])]


def main(job: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in pod(job).get("containers", []) if c.get("name") == ref.COMPONENT]
    assert found, (
        f"expected a container named {ref.COMPONENT!r}, got {[c.get('name') for c in containers(job)]}"
    )
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def argv(c: dict[str, Any]) -> list[str]:
    return [*c.get("command", []), *c.get("args", [])]


def gpus(job: dict[str, Any]) -> list[str]:
    """Where the Job asks for a GPU: 'container part' for each."""
    return [
        f"{c.get('name')} {part}"
        for c in containers(job)
        for part in ("requests", "limits")
        if GPU in c.get("resources", {}).get(part, {})
    ]


# ---------------------------------------------------------------- what the API server accepts
def test_valid(impl: ModuleType) -> None:
    """the Job is valid for the pinned Kubernetes version (strict: no unknown or misspelt field), CPU and GPU

    A dict the API server refuses is a retrain that never runs: compare with `python -m
    mlops_lab.pipeline.k8s_job manifest` field by field (ttlSecondsAfterFinished, not ...Finish).
    """
    version = node_version()
    for what, job in (("CPU", build(impl)), ("GPU", build(impl, CUDA))):
        error = None
        try:
            kubernetes_validate.validate(job, version, strict=True)
        except kubernetes_validate.ValidationError as exc:  # its text dumps the whole schema: keep the gist
            where = "/".join(str(p) for p in exc.absolute_path) or "the Job"
            error = f"expected the {what} Job valid for Kubernetes {version} (strict), got at {where}: "
            error += exc.message
        if error is not None:
            pytest.fail(error, pytrace=False)


def test_name(impl: ModuleType) -> None:
    """the Job is named `name`, or job_name() when None: a DNS label of at most 63 characters

    Job names must be DNS labels: lower case letters, digits and '-', at most 63 characters.
    """
    got = build(impl, name="retrain-lab-1")["metadata"]["name"]
    assert got == "retrain-lab-1", f"expected the name 'retrain-lab-1', got {got!r}"
    got = build(impl)["metadata"].get("name")
    assert isinstance(got, str) and DNS_LABEL.fullmatch(got) and len(got) <= 63, (
        f"expected a default name that is a DNS label of at most 63 characters, got {got!r}"
    )


def test_run_id_is_the_job_name(impl: ModuleType) -> None:
    """the main container runs run_argv(name, reason): the run id is the Job's own name

    A restarted pod resumes the run whose id is the Job's name: build the name once and use it
    for both metadata.name and run_argv.
    """
    for kw in ({"name": "retrain-lab-2"}, {}):
        job = build(impl, reason="drift on amount", **kw)
        name = job["metadata"]["name"]
        got = argv(main(job))
        want = ref.run_argv(name, "drift on amount")
        assert got == want, f"expected the main container to run {want}, got {got}"


def test_namespace(impl: ModuleType) -> None:
    """the Job goes in settings.k8s_namespace

    The monitor's Role lets it create Jobs in its own namespace only.
    """
    got = build(impl)["metadata"].get("namespace")
    assert got == SETTINGS.k8s_namespace, f"expected the namespace {SETTINGS.k8s_namespace!r}, got {got!r}"


def test_labels(impl: ModuleType) -> None:
    """the Job carries LABELS and its pod LABELS plus mlops-lab/postgres-client: "true"

    The trigger finds running Jobs by the component label; the NetworkPolicy lets only pods
    labelled mlops-lab/postgres-client reach Postgres.
    """
    job = build(impl)
    labels = job["metadata"].get("labels", {})
    missing = {k: v for k, v in ref.LABELS.items() if labels.get(k) != v}
    assert not missing, f"expected the Job's labels to include {missing}, got {labels}"
    pod_labels = job["spec"]["template"].get("metadata", {}).get("labels", {})
    want = {**ref.LABELS, "mlops-lab/postgres-client": "true"}
    missing = {k: v for k, v in want.items() if pod_labels.get(k) != v}
    assert not missing, f"expected the pod's labels to include {missing}, got {pod_labels}"


def test_reason_annotation(impl: ModuleType) -> None:
    """the reason is kept in an annotation, whole when short, truncated when long

    Annotations of an object may hold 256 KiB in all: a reason listing every drifted column of a
    long report must not make the API server refuse the Job. reason[:1000] keeps its start.
    """
    reason = "drift on amount, distance_from_home_km"
    values = list(build(impl, reason=reason)["metadata"].get("annotations", {}).values())
    assert reason in values, f"expected an annotation holding the reason {reason!r}, got {values}"
    long = "drift on " + ", ".join(f"feature_{i}" for i in range(40_000))  # about 500 kB
    values = list(build(impl, reason=long)["metadata"].get("annotations", {}).values())
    kept = [v for v in values if isinstance(v, str) and v and long.startswith(v)]
    assert kept, (
        f"expected an annotation holding the start of a long reason, got {[str(v)[:60] for v in values]}"
    )
    size = sum(len(str(v).encode()) for v in values)
    assert size <= 256 * 1024, (
        f"expected the annotations of a {len(long):,}-character reason truncated to fit the API server's "
        f"256 KiB, got {size:,} bytes"
    )


# ---------------------------------------------------------------- how it runs
def test_bounded(impl: ModuleType) -> None:
    """retries, run time and clean-up are bounded: backoffLimit, activeDeadlineSeconds, a TTL after finishing

    BACKOFF_LIMIT pods after a crash, ACTIVE_DEADLINE_S for a hung run, and TTL_AFTER_FINISHED_S
    before a finished Job (and its pod) is deleted: without it, finished Jobs pile up forever.
    """
    spec = build(impl)["spec"]
    want = {
        "backoffLimit": ref.BACKOFF_LIMIT,
        "activeDeadlineSeconds": ref.ACTIVE_DEADLINE_S,
        "ttlSecondsAfterFinished": ref.TTL_AFTER_FINISHED_S,
    }
    wrong = {k: spec.get(k) for k, v in want.items() if spec.get(k) != v}
    assert not wrong, f"expected {want}, got {wrong}"


def test_restart_policy(impl: ModuleType) -> None:
    """the pod restarts a crashed container in place (restartPolicy OnFailure)

    OnFailure keeps the pod, and its emptyDir with the run directory: the restarted container
    resumes the run. Never would start a new pod from an empty directory for every retry.
    """
    got = pod(build(impl)).get("restartPolicy")
    assert got == "OnFailure", f"expected restartPolicy 'OnFailure', got {got!r}"


def test_service_account(impl: ModuleType) -> None:
    """the pod runs as the retrain ServiceAccount, without an API token mounted

    The Job talks to MLflow and Postgres only: automountServiceAccountToken False leaves nothing
    for a compromised container to call the Kubernetes API with.
    """
    p = pod(build(impl))
    got = (p.get("serviceAccountName"), p.get("automountServiceAccountToken"))
    assert got == (ref.SERVICE_ACCOUNT, False), (
        f"expected serviceAccountName {ref.SERVICE_ACCOUNT!r} and automountServiceAccountToken False, "
        f"got {got}"
    )


def test_pod_security(impl: ModuleType) -> None:
    """the pod runs as non-root user 10001 with the RuntimeDefault seccomp profile (POD_SECURITY)"""
    sc = pod(build(impl)).get("securityContext", {})
    got = (sc.get("runAsNonRoot"), sc.get("runAsUser"), sc.get("seccompProfile", {}).get("type"))
    assert got == (True, 10001, "RuntimeDefault"), (
        f"expected runAsNonRoot True, runAsUser 10001, seccompProfile RuntimeDefault, got {got}"
    )


def test_container_security(impl: ModuleType) -> None:
    """every container: read-only root filesystem, no privilege escalation, all capabilities dropped

    container(...) gives each one the restricted securityContext.
    """
    for c in containers(build(impl)):
        sc = c.get("securityContext", {})
        got = (sc.get("readOnlyRootFilesystem"), sc.get("allowPrivilegeEscalation"), sc.get("capabilities"))
        assert got[:2] == (True, False) and "ALL" in (got[2] or {}).get("drop", []), (
            f"expected {c.get('name')} read-only, without privilege escalation, dropping ALL, got {got}"
        )


def test_resources(impl: ModuleType) -> None:
    """every container has CPU and memory requests and limits (RESOURCES for the run container)"""
    job = build(impl)
    for c in containers(job):
        res = c.get("resources", {})
        missing = [
            f"{p}.{w}" for p in ("requests", "limits") for w in ("cpu", "memory") if w not in res.get(p, {})
        ]
        assert not missing, f"expected {c.get('name')} to set {missing}, got {res}"
    got = main(job).get("resources")
    assert got == ref.RESOURCES, f"expected the main container's resources {ref.RESOURCES}, got {got}"


def test_init_container(impl: ModuleType) -> None:
    """an init container "base-data" regenerates the base training set into the home emptyDir

    base_data_argv(settings), env MLOPS_HOME=HOME, INIT_RESOURCES, the same home volume as the
    main container; two emptyDir volumes, home and tmp, each with a sizeLimit.
    """
    job = build(impl)
    inits = pod(job).get("initContainers", [])
    assert [c.get("name") for c in inits] == ["base-data"], (
        f"expected one init container 'base-data', got {[c.get('name') for c in inits]}"
    )
    init = inits[0]
    assert argv(init) == ref.base_data_argv(SETTINGS), (
        f"expected the init container to run {ref.base_data_argv(SETTINGS)}, got {argv(init)}"
    )
    home = env_of(init).get("MLOPS_HOME", {}).get("value")
    assert home == ref.HOME, f"expected the init container's MLOPS_HOME {ref.HOME!r}, got {home!r}"
    assert init.get("resources") == ref.INIT_RESOURCES, (
        f"expected the init container's resources {ref.INIT_RESOURCES}, got {init.get('resources')}"
    )
    for c in (init, main(job)):
        mounts = {m.get("name"): m.get("mountPath") for m in c.get("volumeMounts", [])}
        assert mounts.get("home") == ref.HOME, (
            f"expected {c.get('name')} to mount home at {ref.HOME}, got {mounts}"
        )
    volumes = {v.get("name"): v.get("emptyDir") for v in pod(job).get("volumes", [])}
    unbounded = [n for n in ("home", "tmp") if not (volumes.get(n) or {}).get("sizeLimit")]
    assert not unbounded, f"expected emptyDir volumes home and tmp with a sizeLimit, got {volumes}"


def test_image(impl: ModuleType) -> None:
    """every container runs settings.k8s_image, or default_image() when it is not set"""
    for settings, want in (
        (SETTINGS, IMAGE),
        (SETTINGS.model_copy(update={"k8s_image": None}), ref.default_image()),
    ):
        got = sorted({c.get("image") for c in containers(build(impl, settings))})
        assert got == [want], (
            f"expected every container to run {want!r} (k8s_image {settings.k8s_image!r}), got {got}"
        )


# ---------------------------------------------------------------- settings and secrets
def test_secrets_by_reference(impl: ModuleType) -> None:
    """the store URL and admin token come from the Secret by secretKeyRef, never as values

    job_env(settings) gives both as {"valueFrom": {"secretKeyRef": ...}}: the Job (and kubectl
    get job -o yaml, and every log of it) never holds the password or the token.
    """
    job = build(impl)
    env = env_of(main(job))
    for name, key in ref.SECRET_ENV.items():
        got = env.get(name)
        want = {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.SECRET_NAME, "key": key}}}
        assert got == want, f"expected {want}, got {got}"
    text = json.dumps(job)
    leaked = [
        what
        for what, secret in (("the store password", PASSWORD), ("the admin token", TOKEN))
        if secret in text
    ]
    assert not leaked, f"expected no secret value in the Job, got {' and '.join(leaked)} in it"


def test_settings_env(impl: ModuleType) -> None:
    """the run sees the monitor's settings as MLOPS_* variables, with MLOPS_HOME on the emptyDir"""
    env = env_of(main(build(impl)))
    want = {k: v for k, v in child_env(SETTINGS).items() if k not in ref.SECRET_ENV} | {
        "MLOPS_HOME": ref.HOME
    }
    wrong = {
        k: (env.get(k) or {}).get("value") for k, v in want.items() if (env.get(k) or {}).get("value") != v
    }
    assert not wrong, (
        f"expected the main container's env to hold the settings, got {dict(list(wrong.items())[:5])}"
    )


# ---------------------------------------------------------------- CPU and GPU
def test_cpu_job(impl: ModuleType) -> None:
    """a CPU Job (model_device auto or cpu) asks for no GPU: no GPU request, no nodeSelector, no toleration

    "auto" trains where it runs; only "cuda" means a GPU node.
    """
    for device in ("auto", "cpu"):
        job = build(impl, SETTINGS.model_copy(update={"model_device": device}))
        p = pod(job)
        got = {"gpu": gpus(job), "nodeSelector": p.get("nodeSelector"), "tolerations": p.get("tolerations")}
        assert not any(got.values()), (
            f"expected a {device} Job without a GPU, nodeSelector or toleration, got {got}"
        )


def test_gpu_job(impl: ModuleType) -> None:
    """a cuda Job asks for one GPU, on a GPU node, tolerating the GPU nodes' taint

    GPU_RESOURCE "1" in the main container's requests and limits, nodeSelector
    {GPU_NODE_LABEL: "true"}, and {"key": GPU_RESOURCE, "operator": "Exists", "effect":
    "NoSchedule"}: without the toleration the pod stays Pending (untolerated taint).
    """
    job = build(impl, CUDA)
    res = main(job).get("resources", {})
    got = (res.get("requests", {}).get(GPU), res.get("limits", {}).get(GPU))
    assert got == ("1", "1"), f"expected {GPU} '1' in the main container's requests and limits, got {got}"
    p = pod(job)
    assert p.get("nodeSelector") == {ref.GPU_NODE_LABEL: "true"}, (
        f"expected the nodeSelector {{{ref.GPU_NODE_LABEL!r}: 'true'}}, got {p.get('nodeSelector')}"
    )
    tolerated = [
        t
        for t in p.get("tolerations") or []
        if t.get("key") == GPU
        and t.get("effect") in (None, "NoSchedule")
        and (t.get("operator") == "Exists" or t.get("value") == "present")
    ]
    assert tolerated, f"expected a toleration of the taint {GPU}:NoSchedule, got {p.get('tolerations')}"


def test_gpu_then_cpu(impl: ModuleType) -> None:
    """building a cuda Job changes nothing for the next CPU Job (RESOURCES is not modified)

    RESOURCES is shared by every Job this process builds: add the GPU to a copy of it, inner
    dicts included ({k: dict(v) for k, v in RESOURCES.items()}).
    """
    before = copy.deepcopy(ref.RESOURCES)
    build(impl, CUDA)
    after = ref.RESOURCES
    assert after == before, f"expected RESOURCES unchanged by a cuda Job, got {after}"
    job = build(impl)
    assert not gpus(job), f"expected the next CPU Job without a GPU, got one in {gpus(job)}"


# ---------------------------------------------------------------- the cluster's policies
def test_policies(impl: ModuleType) -> None:
    """the CPU and GPU Jobs meet the policies every workload of the cluster meets

    mlops_lab.cluster.policy.violations: restricted security, resources, pinned images that are
    never pulled (kind loads them). Each line names the container and the rule.
    """
    for what, job in (("CPU", build(impl)), ("GPU", build(impl, CUDA))):
        found = violations([job], IMAGE)
        assert not found, f"expected the {what} Job to meet every policy, got {found}"
