"""The loading policy: which models load at start (``preload``), on-demand loading on the first
request (once, however many requests arrive together), built-in specs in the repository, and the
thread count that LiteRT sessions open with."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tests.unit.test_serving_service import WholeImage, jpeg, network_spec, run

from visionserve.cli.main import main
from visionserve.errors import ConfigError, ModelLoadError, ModelNotReadyError
from visionserve.models.builtin import builtin_specs
from visionserve.models.default import DEFAULT_MODEL_NAME, default_spec
from visionserve.models.preload import parse_preload, preload_names
from visionserve.models.repository import ModelRepository
from visionserve.models.spec import ModelSpec
from visionserve.pipeline import Predictor
from visionserve.serving import DetectionService, ModelState, ServiceConfig
from visionserve.serving.manager import ModelManager, session_threads
from visionserve.serving.threads import ThreadGovernor
from visionserve.settings import Settings


def write_user_model(root: Path, name: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    data = network_spec(name).model_dump(mode="json", exclude={"root"})
    (folder / "model.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    """Built-ins ``det`` (the default) and ``pose``; the user's folder holds ``mine``."""
    write_user_model(tmp_path, "mine")
    return ModelRepository.scan(tmp_path, [network_spec("det"), network_spec("pose")])


# -- the policy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("auto", {"det", "mine"}),
        (" AUTO ", {"det", "mine"}),
        ("all", {"det", "pose", "mine"}),
        ("none", set()),
        ("pose, mine,pose", {"pose", "mine"}),
    ],
)
def test_preload_names_by_policy(repository: ModelRepository, policy: str, expected: set[str]) -> None:
    assert preload_names(policy, repository) == expected


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("mine,nope,other", r"preload: unknown model\(s\) nope, other; the repository holds det, mine, pose"),
        ("auto,mine", "preload: 'auto' cannot be combined with other entries"),
        (" , ", "preload: give auto, all, none or model names"),
    ],
)
def test_bad_policies_are_config_errors(repository: ModelRepository, policy: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preload_names(policy, repository)


def test_preload_setting_from_flag_environment_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VISIONSERVE_"):
            monkeypatch.delenv(name)
    assert Settings.load().preload == "auto"
    config = tmp_path / "settings.yaml"
    config.write_text("preload: [' pose', mine]\n", encoding="utf-8")
    assert Settings.load(config=config).preload == "pose,mine"
    monkeypatch.setenv("VISIONSERVE_PRELOAD", "None")
    assert Settings.load(config=config).preload == "none"
    assert Settings.load(preload="all").preload == "all"
    with pytest.raises(ConfigError, match="preload: Value error, 'all' cannot be combined"):
        Settings.load(preload="all,pose")
    assert parse_preload(["det"]) == "det"


def test_serve_refuses_unknown_preload_names_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISIONSERVE_MODELS", raising=False)
    result = CliRunner().invoke(main, ["serve", "--preload", "no-such-model", "--port", "1"])
    assert result.exit_code == 1
    assert "preload: unknown model(s) no-such-model" in result.output


# -- built-in specs in the repository -------------------------------------------------------------------


def test_builtins_come_first_and_the_default_model_is_the_first() -> None:
    specs = builtin_specs()
    assert specs[0].name == DEFAULT_MODEL_NAME == default_spec().name
    scanned = ModelRepository.scan(None)
    assert scanned.default_name == DEFAULT_MODEL_NAME
    assert scanned.builtin == {spec.name for spec in specs}


def test_a_folder_replaces_a_builtin_and_a_second_folder_of_that_name_is_broken(tmp_path: Path) -> None:
    for folder in ("a-pose", "b-pose"):
        write_user_model(tmp_path, folder)
        text = (tmp_path / folder / "model.yaml").read_text(encoding="utf-8")
        (tmp_path / folder / "model.yaml").write_text(text.replace(f"name: {folder}", "name: pose"), encoding="utf-8")
    scanned = ModelRepository.scan(tmp_path, [network_spec("det"), network_spec("pose", version="builtin")])
    assert scanned.names() == ["det", "pose"]
    assert scanned.specs["pose"].version == "1"  # a-pose's spec, not the built-in one
    assert scanned.builtin == {"det"}
    assert "'pose' is already defined" in scanned.broken["b-pose"]
    assert preload_names("auto", scanned) == {"det", "pose", "b-pose"}  # a user model: loaded at start
    assert scanned.rescan().builtin == {"det"}


# -- on-demand loading through the service ------------------------------------------------------------


class CountingLoads:
    """A ``load`` that counts its calls per model, takes ``delay`` seconds, and fails for ``fail``."""

    def __init__(self, delay: float = 0.0, fail: str | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, spec: ModelSpec) -> Predictor:
        with self._lock:
            self.calls[spec.name] = self.calls.get(spec.name, 0) + 1
        threading.Event().wait(self.delay)
        if spec.name == self.fail:
            raise ModelLoadError(f"model file of {spec.name} is missing")
        return WholeImage(spec)


def service(repository: ModelRepository, loads: CountingLoads, preload: str = "auto") -> DetectionService:
    config = ServiceConfig(cores=2, instances=1, preload=preload)
    return DetectionService(repository, config, set_threads=lambda n: None, load=loads)


def test_builtins_other_than_the_default_load_on_their_first_request_once(repository: ModelRepository) -> None:
    async def scenario() -> None:
        loads = CountingLoads(delay=0.2)
        running = service(repository, loads)
        await running.start(wait=True)
        states = {status.name: (status.state, status.on_demand) for status in running.models()}
        assert states == {
            "det": (ModelState.LOADED, False),
            "mine": (ModelState.LOADED, False),
            "pose": (ModelState.UNLOADED, True),
        }
        assert running.readiness().ready
        assert loads.calls == {"det": 1, "mine": 1}  # warm-ups included: one load each
        results = await asyncio.gather(*(running.detect("pose", [jpeg(64, 48)]) for _ in range(5)))
        assert loads.calls["pose"] == 1
        assert all(result.detections.xyxy.tolist() == [[0, 0, 64, 48]] for (result,) in results)
        assert running.model("pose").state is ModelState.LOADED
        assert not running.model("pose").on_demand
        await running.close()

    run(scenario)


def test_an_explicit_unload_holds_until_an_explicit_load(repository: ModelRepository) -> None:
    async def scenario() -> None:
        loads = CountingLoads()
        running = service(repository, loads)
        await running.start(wait=True)
        await running.detect("pose", [jpeg(32, 32)])
        await running.unload("pose")
        with pytest.raises(ModelNotReadyError, match="'pose' is not available: it is unloaded"):
            await running.detect("pose", [jpeg(32, 32)])
        assert (await running.load("pose")).state is ModelState.LOADED
        assert len(await running.detect("pose", [jpeg(32, 32)])) == 1
        assert loads.calls["pose"] == 2
        await running.close()

    run(scenario)


def test_a_failed_first_load_fails_every_waiting_request_once_then_answers_503(repository: ModelRepository) -> None:
    async def scenario() -> None:
        loads = CountingLoads(delay=0.1, fail="pose")
        running = service(repository, loads)
        await running.start(wait=True)
        outcomes = await asyncio.gather(
            *(running.detect("pose", [jpeg(32, 32)]) for _ in range(3)), return_exceptions=True
        )
        for outcome in outcomes:
            assert isinstance(outcome, ModelNotReadyError)
            assert "failed to load on its first request: model file of pose is missing" in str(outcome)
        assert loads.calls["pose"] == 1
        with pytest.raises(ModelNotReadyError, match="it is failed: model file of pose is missing"):
            await running.detect("pose", [jpeg(32, 32)])
        assert loads.calls["pose"] == 1  # a failed model is not retried on every request
        assert running.readiness().ready  # the other models still serve
        await running.close()

    run(scenario)


def test_a_cancelled_first_request_does_not_cancel_the_load(repository: ModelRepository) -> None:
    async def scenario() -> None:
        loads = CountingLoads(delay=0.3)
        running = service(repository, loads)
        await running.start(wait=True)
        first = asyncio.ensure_future(running.detect("pose", [jpeg(32, 32)]))
        await asyncio.sleep(0.05)
        assert running.model("pose").state is ModelState.LOADING
        first.cancel()
        (result,) = await running.detect("pose", [jpeg(32, 32)])
        assert result.width == 32
        assert loads.calls["pose"] == 1
        await running.close()

    run(scenario)


def test_preload_none_is_ready_and_loads_the_default_model_on_its_first_request(
    repository: ModelRepository,
) -> None:
    async def scenario() -> None:
        loads = CountingLoads()
        running = service(repository, loads, preload="none")
        await running.start(wait=True)
        assert loads.calls == {}
        assert running.readiness().ready
        await running.detect(None, [jpeg(32, 32)])
        assert loads.calls == {"det": 1}
        await running.close()

    run(scenario)


# -- threads of LiteRT sessions ---------------------------------------------------------------------------


def litert_spec(**extra: Any) -> ModelSpec:
    return network_spec("lite", backend="litert", **extra)


@pytest.mark.parametrize(
    ("spec", "instances", "cores", "threads"),
    [
        (litert_spec(), 1, 8, 8),
        (litert_spec(), 3, 8, 2),
        (litert_spec(), 16, 8, 1),
        (litert_spec(runtime={"threads": 3}), 2, 8, 3),
        (network_spec("ort"), 2, 8, 0),
    ],
)
def test_session_threads_share_the_cores_among_instances(
    spec: ModelSpec, instances: int, cores: int, threads: int
) -> None:
    assert session_threads(spec, instances, cores).runtime.threads == threads


def test_manager_opens_litert_instances_with_their_share_of_the_cores() -> None:
    async def scenario() -> None:
        opened: list[ModelSpec] = []

        def load(spec: ModelSpec) -> Predictor:
            opened.append(spec)
            return WholeImage(spec)

        spec = litert_spec()
        repository = ModelRepository(None, {spec.name: spec}, {}, default_name=spec.name)
        manager = ModelManager(repository, ThreadGovernor(4, lambda n: None), instances=2, load=load)
        await manager.load_all()
        assert [s.runtime.threads for s in opened] == [2, 2]
        assert manager.spec("lite").runtime.threads == 0  # the served spec is the model.yaml's
        await manager.close()

    run(scenario)
