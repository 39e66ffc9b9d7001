"""What the searcher stores about each trial, driven like Ray Tune drives it, without Ray:
intermediate values, PRUNED values, retried trials, job folders, a locked SQLite file."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState
from ray.tune.result import DONE
from ray.tune.search import Searcher
from sqlalchemy.exc import OperationalError

from hannah_ray import searcher as searcher_module
from hannah_ray.heartbeat import HEARTBEAT_ATTR
from hannah_ray.ledger import SweepLedger
from hannah_ray.reporting import EPOCH, FINAL, JOB_DIR, OBJECTIVE
from hannah_ray.results import write_trials_table
from hannah_ray.search_space import SearchSpace
from hannah_ray.searcher import HydraOptunaSearch, SharedPlan
from hannah_ray.trial_runner import JobOutcome


def _searcher(
    storage: optuna.storages.BaseStorage | None = None,
    sweep_dir: Path | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    trial_timeout_s: float | None = None,
    storage_outage_s: float = 120.0,
    shared_plan: SharedPlan | None = None,
) -> HydraOptunaSearch:
    sweep_config = None
    if sweep_dir is not None:  # Hydra's default job folders: <sweep dir>/<job number>
        sweep_config = OmegaConf.create(
            {"hydra": {"sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"}}}
        )
    return HydraOptunaSearch(
        search_space=SearchSpace({"x": FloatDistribution(0, 1)}),
        directions=["minimize"],
        study_name="study",
        storage=storage or optuna.storages.InMemoryStorage(),
        sampler=sampler or optuna.samplers.RandomSampler(seed=0),
        ledger=SweepLedger(0.5, 4, ["minimize"]),
        sweep_config=sweep_config,
        trial_timeout_s=trial_timeout_s,
        storage_outage_s=storage_outage_s,
        shared_plan=shared_plan,
    )


def _report(epoch: float, value: float, iteration: int, **extra: object) -> dict:
    """An intermediate result as Tune hands it over (``training_iteration`` counts from 1)."""
    return {OBJECTIVE: value, EPOCH: epoch, "training_iteration": iteration, **extra}


def _final(value: float, job_dir: str | None = None) -> dict:
    """A trial's last report, marked done: Tune hands it to ``on_trial_complete`` alone."""
    outcome = JobOutcome(overrides=[], complete=True, values=[value], job_dir=job_dir)
    return {FINAL: True, "job_outcome": outcome, DONE: True}


def _started(searcher: HydraOptunaSearch, trial_id: str = "t1") -> None:
    searcher.suggest(trial_id)
    searcher.trial_started(trial_id)


def test_reports_from_epoch_0_are_stored_at_their_own_steps() -> None:
    searcher = _searcher()
    _started(searcher)
    for epoch, loss in enumerate([0.9, 0.5, 0.3]):  # the README's loop: epoch=0, 1, 2
        searcher.on_trial_result("t1", _report(epoch, loss, epoch + 1))
    searcher.on_trial_complete("t1", _final(0.3))
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {0: 0.9, 1: 0.5, 2: 0.3}


def test_a_last_report_seen_as_a_result_first_is_stored_once() -> None:
    """Tune hands a report marked done to on_trial_complete alone; one that reaches
    on_trial_result first (a Tune that reads no ``done``) is stored there, and only there."""
    searcher = _searcher()
    _started(searcher)
    searcher.on_trial_result("t1", _report(1, 0.5, 1))
    searcher.on_trial_result("t1", _final(0.4))
    searcher.on_trial_complete("t1", _final(0.4))
    (trial,) = searcher.study.trials
    assert (trial.state, trial.value, trial.intermediate_values) == (
        TrialState.COMPLETE, 0.4, {1: 0.5}
    )  # fmt: skip
    assert searcher._ledger.finished == 1  # noqa: SLF001


def test_a_trial_pruned_after_epoch_0_keeps_the_value_that_stopped_it() -> None:
    searcher = _searcher()
    _started(searcher)
    searcher.on_trial_result("t1", _report(0, 0.2, 1))
    # ASHA stops it on its epoch-1 report, which Tune hands to on_trial_complete only.
    searcher.on_trial_complete("t1", result=_report(1, 0.9, 2))
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.value == 0.9
    assert trial.user_attrs["pruned_at_epoch"] == 1
    assert trial.intermediate_values == {0: 0.2, 1: 0.9}


@pytest.mark.parametrize(
    ("reports", "stop", "intermediate"),
    [  # an epoch reported again, then a stop at it: the last value wins, and is the PRUNED value
        ([(1, 0.5), (2, 0.2)], (2, 0.9), {1: 0.5, 2: 0.9}),
        # a stop at an epoch below the highest stored: Optuna would take epoch 3's value
        ([(1, 0.5), (3, 0.2)], (1, 0.9), {1: 0.9, 3: 0.2}),
    ],
)
def test_a_pruned_trial_has_the_value_of_the_report_that_stopped_it(
    reports: list, stop: tuple, intermediate: dict
) -> None:
    searcher = _searcher()
    _started(searcher)
    for iteration, (epoch, value) in enumerate(reports, start=1):
        searcher.on_trial_result("t1", _report(epoch, value, iteration))
    searcher.on_trial_complete("t1", result=_report(*stop, len(reports) + 1))
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.value == 0.9 and trial.user_attrs["pruned_at_epoch"] == stop[0]
    assert trial.intermediate_values == intermediate


def test_a_retried_trial_stores_its_new_run_and_names_the_dead_runs_epochs() -> None:
    searcher = _searcher()
    _started(searcher)
    for epoch in range(1, 6):  # the first run reports 5 epochs, then its worker dies
        searcher.on_trial_result("t1", _report(epoch, 1.0 / epoch, epoch))
    searcher.trial_started("t1")  # Tune retries it (max_retries): all the searcher is told
    for epoch in (1, 2):
        searcher.on_trial_result("t1", _report(epoch, 10.0 + epoch, epoch))
    searcher.on_trial_complete("t1", result=_report(3, 13.0, 3))  # ASHA stops it at epoch 3
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.PRUNED
    assert trial.value == 13.0  # not 0.2, the dead run's epoch 5
    assert trial.user_attrs["pruned_at_epoch"] == 3
    # The new run's values replace the dead run's; Optuna cannot delete epochs 4 and 5.
    assert trial.intermediate_values == {1: 11.0, 2: 12.0, 3: 13.0, 4: 0.25, 5: 0.2}
    assert trial.user_attrs["stale_epochs"] == [4, 5]


def test_a_retried_trial_that_gets_further_has_no_stale_epochs() -> None:
    searcher = _searcher()
    _started(searcher)
    searcher.on_trial_result("t1", _report(1, 5.0, 1))
    searcher.trial_started("t1")
    for epoch in (1, 2):
        searcher.on_trial_result("t1", _report(epoch, 1.0 + epoch, epoch))
    searcher.on_trial_complete("t1", _final(2.5))
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 2.5
    assert trial.intermediate_values == {1: 2.0, 2: 3.0}
    assert "stale_epochs" not in trial.user_attrs


def _table(study: optuna.Study, tmp_path: Path) -> dict[str, dict[str, str]]:
    import csv

    write_trials_table(study.trials, 1, str(tmp_path / "trials.csv"))
    with open(tmp_path / "trials.csv") as table:
        return {row["number"]: row for row in csv.DictReader(table)}


def test_trials_that_fail_without_a_final_report_point_to_their_job_folder(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "sweep"
    # An earlier sweep's folder of trial 3's number, in the same (fixed) sweep folder.
    (sweep_dir / "3" / ".hydra").mkdir(parents=True)
    (sweep_dir / "3" / ".hydra" / "overrides.yaml").write_text("[]")
    an_hour_ago = time.time() - 3600
    for old in ("3/.hydra/overrides.yaml", "3/.hydra", "3"):
        os.utime(sweep_dir / old, (an_hour_ago, an_hour_ago))
    searcher = _searcher(sweep_dir=sweep_dir)
    for trial_id in ("died", "reported_then_died", "stopped", "never_started"):
        searcher.suggest(trial_id)
    # run_job wrote these; then the worker died or hung. 2: hydra.output_subdir=null, a log only.
    (sweep_dir / "0" / ".hydra").mkdir(parents=True)
    (sweep_dir / "0" / ".hydra" / "overrides.yaml").write_text("[]")
    (sweep_dir / "2").mkdir(parents=True)
    (sweep_dir / "2" / "app.log").write_text("training...")
    searcher.trial_started("died")
    searcher.on_trial_complete("died", error=True)
    searcher.trial_started("reported_then_died")
    reported_dir = str(tmp_path / "elsewhere" / "1")  # a custom hydra.sweep.subdir
    searcher.on_trial_result("reported_then_died", _report(1, 0.5, 1, **{JOB_DIR: reported_dir}))
    searcher.on_trial_complete("reported_then_died", error=True)
    searcher.trial_started("stopped")
    searcher.fail_open_trials()  # Ctrl-C: Tune never completes the open trials
    rows = _table(searcher.study, tmp_path)
    assert [row["state"] for row in rows.values()] == ["FAIL"] * 4
    assert rows["0"]["job_dir"] == str(sweep_dir / "0")
    assert rows["1"]["job_dir"] == reported_dir
    assert rows["2"]["job_dir"] == str(sweep_dir / "2")
    assert rows["3"]["job_dir"] == ""  # it never ran: the folder is an earlier sweep's
    assert searcher.study.trials[0].user_attrs["job_dir"] == str(sweep_dir / "0")


def _hold_sqlite_lock(path: Path, hold_s: float, locked: threading.Event) -> threading.Thread:
    """Another writer (e.g. a second sweep) holding the SQLite file for ``hold_s`` seconds."""
    release = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(hold_s)  # the lock holder's own work; nobody sets it
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def test_a_result_arriving_while_another_writer_locks_sqlite_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "study.db"
    with sqlite3.connect(path) as connection:  # as create_storage sets it up
        connection.execute("PRAGMA journal_mode=WAL")
    url = f"sqlite:///{path}"
    # A busy timeout far shorter than the lock, so that SQLite gives up and the searcher retries.
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.05}})
    searcher = _searcher(storage)
    _started(searcher)
    locked = threading.Event()
    holder = _hold_sqlite_lock(path, hold_s=1.0, locked=locked)
    assert locked.wait(10)
    caplog.set_level(logging.WARNING, logger="hannah_ray")
    searcher.on_trial_complete("t1", _final(0.1))
    holder.join()
    (trial,) = optuna.load_study(study_name="study", storage=url).trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.1
    assert trial.user_attrs["ray_trial_id"] == "t1"
    assert "the database is locked; trying again" in caplog.text


class _LockedOnceInsideAsk(optuna.samplers.RandomSampler):
    """Meets a locked database once, inside ``Study.ask`` after it took a trial: the moment a
    real lock would have to hit, which a second writer cannot time."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.locked = False

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.locked:
            self.locked = True
            try:
                raise OperationalError("UPDATE trials", {}, Exception("database is locked"))
            except OperationalError as error:  # as Optuna's RDBStorage wraps it
                raise StorageInternalError("An exception is raised during the commit.") from error


def test_a_queued_point_whose_trial_meets_a_lock_inside_ask_is_asked_for_again() -> None:
    searcher = _searcher(sampler=_LockedOnceInsideAsk())
    # A grid rerun's missing point, or a requeued orphan's: it keeps its link to the orphan.
    searcher.study.enqueue_trial({"x": 0.25}, user_attrs={"requeued_from_trial": 3})
    suggestion = searcher.suggest("t1")
    assert suggestion["overrides"] == ["x=0.25"]
    trials = searcher.study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING]  # none left RUNNING
    assert trials[1].user_attrs == {"requeued_from_trial": 3}


class _FlakyStorage(optuna.storages.InMemoryStorage):
    """Stands in for a database server that goes away for a while (a PostgreSQL restart): every
    call that would reach the server fails while ``down`` is set. (A real server cannot be taken
    down and up again within a unit test here.)"""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.exit_on_tell = False
        self.down_after_create = False  # goes down right after creating a trial
        self.exit_on_step = False

    def _check(self) -> None:
        if self.down:
            raise StorageInternalError("server closed the connection unexpectedly")

    def create_new_trial(self, study_id, template_trial=None):  # noqa: ANN001, ANN201
        self._check()
        trial_id = super().create_new_trial(study_id, template_trial)
        self.down = self.down or self.down_after_create
        return trial_id

    def set_trial_intermediate_value(self, trial_id, step, value):  # noqa: ANN001, ANN201
        if self.exit_on_step:
            self.exit_on_step = False
            raise SystemExit(15)  # SIGTERM lands while an epoch's value is being stored
        self._check()
        return super().set_trial_intermediate_value(trial_id, step, value)

    def get_study_id_from_name(self, study_name):  # noqa: ANN001, ANN201
        self._check()
        return super().get_study_id_from_name(study_name)

    def set_trial_system_attr(self, trial_id, key, value):  # noqa: ANN001, ANN201
        self._check()
        return super().set_trial_system_attr(trial_id, key, value)

    def set_trial_state_values(self, trial_id, state, values=None):  # noqa: ANN001, ANN201
        if self.exit_on_tell and state.is_finished():
            self.exit_on_tell = False
            raise SystemExit(15)  # SIGTERM lands while the trial's end is being stored
        self._check()
        return super().set_trial_state_values(trial_id, state, values)

    def set_trial_user_attr(self, trial_id, key, value):  # noqa: ANN001, ANN201
        self._check()
        return super().set_trial_user_attr(trial_id, key, value)

    def get_trial(self, trial_id):  # noqa: ANN001, ANN201
        self._check()
        return super().get_trial(trial_id)


def test_a_trial_that_ends_while_the_storage_is_down_is_stored_once_it_is_back() -> None:
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    _started(searcher, "t2")
    storage.down = True
    searcher.on_trial_complete("t1", _final(0.25))  # no error reaches Tune: the sweep goes on
    storage.down = False
    assert searcher.study.trials[0].state == TrialState.RUNNING
    # Still open: the heartbeat keeps stamping it, so no other sweep takes it for an orphan.
    assert searcher.study.trials[0]._trial_id in searcher.open_trial_ids()
    searcher.on_trial_complete("t2", _final(0.5))  # the next trial's end tells it again
    first, second = searcher.study.trials
    assert (first.state, first.value) == (TrialState.COMPLETE, 0.25)
    assert first.user_attrs["ray_trial_id"] == "t1"  # its attributes came with it
    assert (second.state, second.value) == (TrialState.COMPLETE, 0.5)
    assert searcher.open_trial_ids() == []


def test_a_trial_whose_end_is_not_stored_by_the_sweeps_end_is_told_then() -> None:
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    storage.down = True
    searcher.on_trial_complete("t1", _final(0.25))
    storage.down = False
    searcher.fail_open_trials()
    (trial,) = searcher.study.trials
    assert (trial.state, trial.value) == (TrialState.COMPLETE, 0.25)


def test_no_trial_starts_while_the_storage_is_down_and_the_sweep_goes_on(monkeypatch) -> None:
    """A trial ends while the database restarts; Tune asks for the next trial at once. It gets
    none (and asks again at its next step) until the storage is back, instead of an error that
    would end the sweep."""
    monkeypatch.setattr(searcher_module, "STORAGE_RETRY_S", 0.0)
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    storage.down = True
    searcher.on_trial_complete("t1", _final(0.25))
    assert searcher.suggest("t2") is None
    assert searcher.suggest("t2") is None
    storage.down = False
    assert searcher.suggest("t2")["number"] == 1
    searcher.trial_started("t2")
    searcher.on_trial_complete("t2", _final(0.5))
    trials = searcher.study.trials
    assert [(t.state, t.value) for t in trials] == [
        (TrialState.COMPLETE, 0.25),
        (TrialState.COMPLETE, 0.5),
    ]


def test_a_trial_whose_sampling_meets_the_outage_is_stored_fail_once_the_storage_is_back(
    monkeypatch,
) -> None:
    monkeypatch.setattr(searcher_module, "STORAGE_RETRY_S", 0.0)
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    storage.down_after_create = True  # the trial is created, then its values cannot be stored
    assert searcher.suggest("t2") is None
    storage.down = storage.down_after_create = False
    assert searcher.study.trials[1].state == TrialState.RUNNING
    # Stamped by the heartbeat meanwhile, so that no other sweep takes it for an orphan.
    assert searcher.study.trials[1]._trial_id in searcher.open_trial_ids()
    _started(searcher, "t2")
    searcher.on_trial_complete("t1", _final(0.25))  # a trial's end stores it too
    first, unsampled, second = searcher.study.trials
    assert first.state == TrialState.COMPLETE and second.state == TrialState.RUNNING
    assert unsampled.state == TrialState.FAIL
    assert "Sampling failed" in unsampled.user_attrs["fail_reason"]
    assert unsampled._trial_id not in searcher.open_trial_ids()


def test_a_storage_outage_longer_than_its_limit_stops_the_sweep(monkeypatch) -> None:
    monkeypatch.setattr(searcher_module, "STORAGE_RETRY_S", 0.0)
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage, storage_outage_s=0.05)
    storage.down = True
    assert searcher.suggest("t1") is None
    time.sleep(0.1)
    with pytest.raises(StorageInternalError):
        searcher.suggest("t1")


def test_a_sampler_error_while_the_storage_answers_stops_at_once() -> None:
    def broken(cfg: object, trial: optuna.Trial) -> None:
        raise ValueError("bad custom search space")

    searcher = _searcher(storage=_FlakyStorage())
    searcher._custom_search_space = broken  # noqa: SLF001
    with pytest.raises(ValueError, match="bad custom search space"):
        searcher.suggest("t1")
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.FAIL


def test_sigterm_while_storing_a_trials_end_keeps_its_outcome() -> None:
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    _started(searcher, "t2")
    storage.exit_on_tell = True
    with pytest.raises(SystemExit):
        searcher.on_trial_complete("t1", _final(0.25))
    searcher.fail_open_trials()  # the sweep's clean-up after the exit
    first, second = searcher.study.trials
    assert (first.state, first.value) == (TrialState.COMPLETE, 0.25)  # not "stopped"
    assert second.state == TrialState.FAIL
    assert "Stopped before the task finished" in second.user_attrs["fail_reason"]


def test_sigterm_while_an_earlier_trials_end_is_stored_again_keeps_both_outcomes() -> None:
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    _started(searcher, "t2")
    storage.down = True
    searcher.on_trial_complete("t1", _final(0.25))  # kept, to be told again
    storage.down = False
    storage.exit_on_tell = True  # SIGTERM lands while t2's end tells t1's again
    with pytest.raises(SystemExit):
        searcher.on_trial_complete("t2", _final(0.5))
    searcher.fail_open_trials()
    assert [(t.state, t.value) for t in searcher.study.trials] == [
        (TrialState.COMPLETE, 0.25),
        (TrialState.COMPLETE, 0.5),
    ]


def test_sigterm_while_a_stopped_trials_last_value_is_stored_keeps_it_pruned() -> None:
    storage = _FlakyStorage()
    searcher = _searcher(storage=storage)
    _started(searcher, "t1")
    searcher.on_trial_result("t1", _report(1, 0.9, 1))
    storage.exit_on_step = True
    with pytest.raises(SystemExit):
        searcher.on_trial_complete("t1", _report(2, 0.7, 2))  # ASHA stopped it at epoch 2
    searcher.fail_open_trials()
    (trial,) = searcher.study.trials
    assert (trial.state, trial.value) == (TrialState.PRUNED, 0.7)


def test_sigterm_while_sampling_leaves_no_trial_running() -> None:
    def told_to_exit(cfg: object, trial: optuna.Trial) -> None:
        raise SystemExit(15)

    searcher = _searcher()
    searcher._custom_search_space = told_to_exit  # noqa: SLF001
    with pytest.raises(SystemExit):
        searcher.suggest("t1")
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.FAIL
    assert "Sampling failed" in trial.user_attrs["fail_reason"]


def test_a_trial_that_fails_before_it_starts_is_no_timeout() -> None:
    """It waited for resources longer than trial_timeout_s; its worker then failed to start."""
    searcher = _searcher(trial_timeout_s=0.01)
    searcher.suggest("t1")
    time.sleep(0.05)
    searcher.on_trial_complete("t1", error=True)
    (trial,) = searcher.study.trials
    assert trial.state == TrialState.FAIL
    assert "trial_timeout_s" not in trial.user_attrs.get("fail_reason", "")


def _two_sweeps(n_trials: int) -> tuple[HydraOptunaSearch, HydraOptunaSearch]:
    """Two sweeps started at the same time on one (empty) study of ``n_trials``."""
    storage = optuna.storages.InMemoryStorage()
    plan = SharedPlan(n_to_run=n_trials, known_ids=frozenset(), grace_s=120.0)
    return _searcher(storage=storage, shared_plan=plan), _searcher(
        storage=storage, shared_plan=plan
    )


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searcher_module, "STORAGE_RETRY_S", 0.0)


def test_sweeps_sharing_a_study_run_n_trials_between_them(no_retry_delay) -> None:
    """``n_trials`` is the study's total: the same command started on two machines splits it."""
    a, b = _two_sweeps(4)
    for trial_id in ("1", "2"):
        _started(a, f"a{trial_id}")
        _started(b, f"b{trial_id}")
    assert a.suggest("a3") is None  # the others' running trials may still fail: wait
    for searcher, prefix in ((a, "a"), (b, "b")):
        for trial_id in ("1", "2"):
            searcher.on_trial_complete(f"{prefix}{trial_id}", _final(0.5))
    assert a.suggest("a3") == Searcher.FINISHED
    assert b.suggest("b3") == Searcher.FINISHED
    assert [t.state for t in a.study.trials] == [TrialState.COMPLETE] * 4
    assert not a._ledger.stopped_early  # a full study is a normal end, not an interruption


def test_another_sweeps_failed_trial_leaves_its_share_to_run(no_retry_delay) -> None:
    a, b = _two_sweeps(4)
    _started(a, "a1")
    _started(b, "b1")
    _started(b, "b2")
    b.on_trial_complete("b2", error=True)  # FAIL: not one of the study's n_trials
    for trial_id in ("a2", "a3"):  # with a1 and b1: four trials of the study's four
        assert a.suggest(trial_id) not in (None, Searcher.FINISHED)
    assert a.suggest("a4") is None
    b.on_trial_complete("b1", _final(0.5))
    assert a.suggest("a4") == Searcher.FINISHED


def test_a_trial_left_running_by_a_dead_sweep_takes_no_share(no_retry_delay) -> None:
    storage = optuna.storages.InMemoryStorage()
    killed = optuna.create_study(study_name="study", storage=storage).ask()  # before the plan
    a, _ = _two_sweeps(2)
    plan = SharedPlan(n_to_run=2, known_ids=frozenset({killed._trial_id}), grace_s=120.0)
    rerun = _searcher(storage=storage, shared_plan=plan)  # just after the kill: beat still fresh
    rerun.study._storage.set_trial_system_attr(killed._trial_id, HEARTBEAT_ATTR, time.time())
    _started(rerun, "r1")
    _started(rerun, "r2")
    rerun.on_trial_complete("r1", _final(0.5))
    rerun.on_trial_complete("r2", _final(0.5))
    assert rerun.suggest("r3") == Searcher.FINISHED
    # One that a sweep started after this one planned, then died: counted until its beat is stale.
    late = a.study.ask()
    a.study._storage.set_trial_system_attr(late._trial_id, HEARTBEAT_ATTR, time.time() - 600)
    _started(a, "a1")
    _started(a, "a2")
    assert a.suggest("a3") == Searcher.FINISHED


def test_a_continued_study_counts_only_what_is_new(no_retry_delay) -> None:
    storage = optuna.storages.InMemoryStorage()
    first = _searcher(storage=storage)
    _started(first, "t1")
    first.on_trial_complete("t1", _final(0.5))
    known = frozenset(t._trial_id for t in first.study.trials)
    rerun = _searcher(storage=storage, shared_plan=SharedPlan(2, known, 120.0))  # n_trials=3
    _started(rerun, "r1")
    _started(rerun, "r2")
    rerun.on_trial_complete("r1", _final(0.5))
    rerun.on_trial_complete("r2", _final(0.5))
    assert rerun.suggest("r3") == Searcher.FINISHED
