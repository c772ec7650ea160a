"""The ``ray`` trainer: the local trainer's search as Ray Tune (OptunaSearch + ASHA), each
trial one Ray Train ``XGBoostTrainer`` fit.

``address`` unset starts a local Ray in this process (shut down by :meth:`RayTrainer.close`);
``"auto"`` or ``"ray://host:10001"`` joins a cluster, which rtml never shuts down. The data
goes to Ray's object store once per :meth:`RayTrainer.tune`. Workers report the best
validation value every few rounds (ASHA acts on it) and checkpoint the booster cut at its
best iteration; rtml scores each finished trial's booster on the validation split with the
local trainer's metric code and keeps the best. See docs/ray.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import ray
from ray import tune

from rtml.backends.ray_support import check_reachable, first_line, quiet_loggers
from rtml.backends.trainer.base import TrainingData, TrialProgress, TuneRequest, TuneResult
from rtml.backends.trainer.config import RayTrainerConfig
from rtml.backends.trainer.local import METRIC_FUNCTIONS, MIN_STARTUP_TRIALS, predict
from rtml.core.training.report import LOWER_IS_BETTER, Trial
from rtml.core.training.search import DEFAULT_ROUNDS, EVAL_METRIC, booster_params, suggest
from rtml.definitions.model import Choice, IntParam, SearchParam
from rtml.errors import BackendUnavailableError, ConfigError, InvalidInputError

CHECKPOINT_FILE = "model.ubj"
# Set in each trial's driver; Ray Train passes them on to its controller and workers. Ray
# Train V2 (the default in Ray 2.60), whose controller takes one report per health-check
# poll: 2 s by default, which would make a small trial wait seconds per report.
_TRAIN_ENV = {"RAY_TRAIN_V2_ENABLED": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}
# Ray Train frees the CPUs of a trial ASHA stopped only when its State API answers, which
# needs Ray's dashboard process: without it every stopped trial would keep its workers' CPUs
# for good, and the next trials would wait for them. So the local Ray runs one (loopback only).
# Ray Train controller errors a trial tolerates (e.g. its workers not starting within 60 s
# for want of free CPUs) before it fails.
_START_ATTEMPTS = 3
_QUIET_LOGGERS = ("ray", "ray.tune", "ray.train", "ray._private.authentication.authentication_token_setup")


def report_every(grace_period: int) -> int:
    """Rounds between two reports: the largest divisor of ``grace_period`` up to 10, so that
    every ASHA rung (``grace_period * reduction_factor**k``) falls on a report."""
    return max(d for d in range(1, 11) if grace_period % d == 0)


def max_rounds(request: TuneRequest) -> int:
    """The most boosting rounds any trial of ``request`` can run."""
    rounds = int(request.base_params.get("n_estimators", DEFAULT_ROUNDS))
    param = request.search_space.get("n_estimators")
    if isinstance(param, IntParam):
        rounds = param.high
    elif isinstance(param, Choice):
        rounds = max(int(v) for v in param.values)
    return rounds


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of a trial: ``xgboost.train`` on its shard of the rows."""
    import ray.train
    import xgboost

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    x_train, y_train, x_valid, y_valid = (ray.get(ref) for ref in config["data"])
    if world > 1:  # data-parallel: each worker holds every world-th row of both splits
        x_train, y_train = x_train[rank::world], y_train[rank::world]
        x_valid, y_valid = x_valid[rank::world], y_valid[rank::world]
    names = config["feature_names"] or None
    dtrain = xgboost.DMatrix(x_train, label=y_train, feature_names=names, missing=np.nan)
    dvalid = xgboost.DMatrix(x_valid, label=y_valid, feature_names=names, missing=np.nan)
    key, lower, every = config["metric_key"], config["lower"], config["report_every"]

    class Reporter(xgboost.callback.TrainingCallback):
        best: float | None = None
        best_iteration = 0

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            log = evals_log["validation"]
            value = float((log[key] if key in log else log[list(log)[-1]])[-1])
            if self.best is None or (value < self.best if lower else value > self.best):
                self.best, self.best_iteration = value, epoch
            if (epoch + 1) % every == 0:
                ray.train.report(
                    {"score": self.best, "rounds": epoch + 1, "best_iteration": self.best_iteration}
                )
            return False

    reporter = Reporter()
    booster = xgboost.train(
        config["params"],
        dtrain,
        num_boost_round=config["rounds"],
        evals=[(dvalid, "validation")],
        early_stopping_rounds=config["early_stopping_rounds"],
        verbose_eval=False,
        callbacks=[reporter],
    )
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    final = {"score": reporter.best, "rounds": booster.num_boosted_rounds(), "best_iteration": best}
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            booster[: best + 1].save_model(os.path.join(directory, CHECKPOINT_FILE))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report({**final, "finished": 1}, checkpoint=checkpoint)


def _define_by_run(space: Mapping[str, SearchParam], trial: Any) -> None:
    """OptunaSearch's search space (a module function: Tune pickles its searcher)."""
    suggest(trial, space)


def _run_trial(config: dict[str, Any], job: dict[str, Any]) -> None:
    """One Tune trial (the driver of one Ray Train run); ``config`` is the trial's choices."""
    import ray.tune
    from ray.train.v2.api.config import FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.xgboost.xgboost_trainer import XGBoostTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    os.environ.update(_TRAIN_ENV)
    params, rounds = booster_params(
        job["base_params"], config, metric=job["metric"], seed=job["seed"], n_jobs=job["cpus_per_worker"]
    )
    trainer = XGBoostTrainer(
        _train_worker,
        train_loop_config={**job["worker"], "params": params, "rounds": rounds},
        scaling_config=ScalingConfig(
            num_workers=job["num_workers"], resources_per_worker={"CPU": job["cpus_per_worker"]}
        ),
        run_config=RunConfig(
            name=ray.tune.get_context().get_trial_id(),
            storage_path=job["storage"] + "/train",
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=0, controller_failure_limit=_START_ATTEMPTS),
        ),
    )
    trainer.fit()


class RayTrainer:
    def __init__(self, config: RayTrainerConfig | None = None) -> None:
        self.config = config or RayTrainerConfig()
        self._started = False  # this object started the local Ray it uses

    # -- Ray ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Start a local Ray, or join the configured cluster (a no-op if Ray is up)."""
        if ray.is_initialized():
            return
        address = self.config.address
        if address is not None and address != "auto":
            check_reachable(address, "trainer.address")
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:  # one CPU slot per core; the dashboard only on loopback (see below)
            options |= {
                "num_cpus": os.cpu_count() or 1,
                "include_dashboard": True,
                "dashboard_host": "127.0.0.1",
            }
        with _quiet():
            try:
                ray.init(address=address, ignore_reinit_error=True, **options)
                self._started = address is None
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, TimeoutError...
                where = "start a local Ray" if address is None else f"join the Ray cluster at {address!r}"
                fix = (
                    "check `ray start --head` works on this machine, or set trainer.type: local"
                    if address is None
                    else "start the cluster (`ray start --head`), or fix trainer.address"
                )
                raise BackendUnavailableError(f"could not {where}: {first_line(exc)}. Fix: {fix}") from None

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    # -- tuning --------------------------------------------------------------------------
    def tune(
        self, data: TrainingData, request: TuneRequest, progress: TrialProgress | None = None
    ) -> TuneResult:
        if request.metric not in METRIC_FUNCTIONS:
            raise InvalidInputError(
                f"unknown tuning metric {request.metric!r}. Fix: use one of {', '.join(METRIC_FUNCTIONS)}"
            )
        started = time.perf_counter()
        self.connect()
        concurrency = self._concurrency()
        storage = self.config.storage_path or tempfile.mkdtemp(prefix="rtml-ray-")
        if "://" not in storage:
            storage = os.path.abspath(storage)
        arrays = (data.x_train, data.y_train, data.x_valid, data.y_valid)
        refs = tuple(ray.put(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays)
        tracker = _Tracker(progress, request.trials)
        with _quiet():
            _fit(self.config, request, data.feature_names, refs, storage, concurrency, tracker)
        del refs  # the object store may free the arrays once the trials are gone
        result = _result(data, request, tracker, storage, self.config.cpus_per_worker, started)
        if self.config.storage_path is None:  # kept when tuning failed: it holds the trials' logs
            shutil.rmtree(storage, ignore_errors=True)
        return result

    def _concurrency(self) -> int:
        per_trial = self.config.num_workers * self.config.cpus_per_worker
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if per_trial > cpus:
            raise ConfigError(
                f"a Ray trial needs {per_trial} CPUs (trainer.num_workers x trainer.cpus_per_worker) "
                f"but the Ray cluster has {cpus}. Fix: lower trainer.num_workers or "
                "trainer.cpus_per_worker, or add nodes"
            )
        fit = max(1, cpus // per_trial)
        return min(fit, self.config.max_concurrent_trials or fit)


def _fit(
    config: RayTrainerConfig,
    request: TuneRequest,
    feature_names: list[str],
    refs: tuple[Any, ...],
    storage: str,
    concurrency: int,
    tracker: _Tracker,
) -> None:
    import optuna
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lower = request.metric in LOWER_IS_BETTER
    mode = "min" if lower else "max"
    startup = min(10, max(MIN_STARTUP_TRIALS, request.trials // 2))  # as the local trainer
    sampler = optuna.samplers.TPESampler(seed=request.seed, n_startup_trials=startup)
    rounds = max_rounds(request)
    grace = min(config.grace_period, rounds)
    job = {
        "base_params": dict(request.base_params),
        "metric": request.metric,
        "seed": request.seed,
        "num_workers": config.num_workers,
        "cpus_per_worker": config.cpus_per_worker,
        "storage": storage,
        "worker": {
            "data": refs,
            "feature_names": list(feature_names),
            "metric_key": EVAL_METRIC[request.metric],
            "lower": lower,
            "report_every": report_every(grace),
            "early_stopping_rounds": request.early_stopping_rounds,
        },
    }
    # The trial's driver holds no CPU (its Ray Train workers do); a zero bundle is refused.
    trainable = tune.with_resources(tune.with_parameters(_run_trial, job=job), {"CPU": 0, "memory": 2**20})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(
                space=functools.partial(_define_by_run, dict(request.search_space)),
                metric="score",
                mode=mode,
                sampler=sampler,
            ),
            scheduler=ASHAScheduler(
                time_attr="rounds",
                metric="score",
                mode=mode,
                max_t=rounds + 1,  # the final report (with the model) must never be cut
                grace_period=grace,
                reduction_factor=config.reduction_factor,
            ),
            num_samples=request.trials,
            max_concurrent_trials=concurrency,
        ),
        run_config=tune.RunConfig(
            name=f"rtml-{uuid.uuid4().hex[:8]}",
            storage_path=storage,
            verbose=0,
            callbacks=[tracker],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    tuner.fit()


class _Tracker(tune.Callback):
    """Each trial's last result, choices and end state, numbered in creation order; calls
    the progress callback as trials end."""

    def __init__(self, progress: TrialProgress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.results: dict[int, dict[str, Any]] = {}
        self.configs: dict[int, dict[str, Any]] = {}
        self.errors: dict[int, str] = {}
        self.done = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"progress": None, "total": self.total}  # Tune pickles its run config; this stays

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["progress"], state["total"])  # type: ignore[misc]

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:
        number = trials.index(trial)
        self.results[number] = dict(result)
        self.configs[number] = dict(trial.config)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trials.index(trial), trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        number = trials.index(trial)
        try:
            text = str(trial.get_pickled_error() or "failed").strip().splitlines()
        except Exception:  # the error file is Tune's; never hide the trial's end for it
            text = ["failed"]
        self.errors[number] = text[-1] if text else "failed"  # the innermost exception's message
        self._ended(number, trial)

    def _ended(self, number: int, trial: Any) -> None:
        self.configs[number] = dict(trial.config)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _result(
    data: TrainingData,
    request: TuneRequest,
    tracker: _Tracker,
    storage: str,
    cpus_per_worker: int,
    started: float,
) -> TuneResult:
    """Score every finished trial on the validation split and pick the best one."""
    score = METRIC_FUNCTIONS[request.metric]
    lower = request.metric in LOWER_IS_BETTER
    trials: list[Trial] = []
    best: tuple[float, bytes, int, dict[str, Any]] | None = None
    for number in sorted(tracker.configs):
        chosen = tracker.configs[number]
        last = tracker.results.get(number, {})
        if "finished" in last and "checkpoint_path" in last:
            raw = _read_checkpoint(storage, last["checkpoint_path"])
            value = score(data.y_valid, predict(raw, data.x_valid, data.feature_names))
            iteration = int(last["best_iteration"])
            trials.append(Trial(number, chosen, value, iteration))
            if best is None or (value < best[0] if lower else value > best[0]):
                best = (value, raw, iteration, chosen)
        elif number in tracker.errors:
            trials.append(Trial(number, chosen, float("nan"), -1, state="failed"))
        else:
            value = float(last.get("score", float("nan")))
            iteration = int(last.get("best_iteration", -1))
            trials.append(Trial(number, chosen, value, iteration, state="pruned"))
    if best is None:
        reason = next(iter(tracker.errors.values()), "no trial finished")
        fix = "check the model's params and search_space" if "XGBoost" in reason else "check the Ray cluster"
        error = InvalidInputError if "XGBoost" in reason else BackendUnavailableError
        raise error(f"no Ray Tune trial finished: {reason}. Fix: {fix}; trial logs are under {storage}")
    value, raw, iteration, chosen = best
    params, _ = booster_params(
        request.base_params, chosen, metric=request.metric, seed=request.seed, n_jobs=cpus_per_worker
    )
    return TuneResult(
        params=params,
        best_iteration=iteration,
        booster=raw,
        validation_value=value,
        trials=trials,
        seconds=time.perf_counter() - started,
    )


def _read_checkpoint(storage: str, checkpoint_path: str) -> bytes:
    """The booster file of a checkpoint, on local disk or on the storage's filesystem."""
    if "://" not in storage:
        with open(os.path.join(checkpoint_path, CHECKPOINT_FILE), "rb") as handle:
            return handle.read()
    import pyarrow.fs

    filesystem, _ = pyarrow.fs.FileSystem.from_uri(storage)
    with filesystem.open_input_stream(f"{checkpoint_path}/{CHECKPOINT_FILE}") as stream:
        return bytes(stream.read())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No Ray banners, progress tables or trial tracebacks on the console: a failure reaches
    the caller as an exception (trial errors as the first trial's message)."""
    previous = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the new output engine ignores verbose=0
    try:
        with quiet_loggers(_QUIET_LOGGERS, logging.CRITICAL):
            yield
    finally:
        if previous is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = previous
