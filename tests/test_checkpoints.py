"""The record that lets `--resume` continue only the run it interrupted (aqi/checkpoints.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aqi.checkpoints import RUN_FILE, check_run, differences, run_record
from aqi.config import AqiError, Config

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


@given(JSON)
def test_a_record_does_not_differ_from_itself(record):
    assert differences(record, record) == []


def test_differences_name_each_changed_leaf_with_its_path():
    before = {"config": {"train": {"lr": 0.001, "epochs": 3}}, "stations": ["A", "B"]}
    now = {"config": {"train": {"lr": 0.002, "epochs": 3}}, "stations": ["A"], "start": "ab"}
    assert differences(before, now) == [
        "config.train.lr: 0.001 → 0.002",
        "start: (none) → ab",
        'stations: ["A", "B"] → ["A"]',
    ]


def test_what_training_never_reads_is_not_part_of_a_run():
    """The device, and the test split an hourly ingest extends while the run is interrupted."""

    def record(data_end: str, test: int, **fields):
        data = {"last_origin": data_end, "windows": {"train": 10, "val": 5, "test": test}}
        return run_record(Config().with_fields(test_end=data_end, **fields), {"data": data})

    gpu = record("2017-02-28 22:00", 100, device="gpu")
    assert gpu == record("2017-02-28 23:00", 101, device="cpu")
    assert gpu != record("2017-02-28 22:00", 100, device="gpu", lr=1.0)
    assert gpu != record("2017-02-28 22:00", 100, device="gpu", val_end="2016-02-29 23:00")


def test_resume_refuses_another_runs_checkpoints_and_keeps_them(tmp_path):
    first = run_record(Config(), {"data": {"windows": {"train": 10}}})
    check_run(tmp_path, tmp_path, first, resume=False)
    kept = (tmp_path / RUN_FILE).read_text()
    other = run_record(Config(), {"data": {"windows": {"train": 12}}})
    with pytest.raises(AqiError, match=r"data.windows.train: 10 → 12; .* drop --resume"):
        check_run(tmp_path, tmp_path, other, resume=True)
    assert (tmp_path / RUN_FILE).read_text() == kept
    check_run(tmp_path, tmp_path, first, resume=True)  # the same run resumes
    check_run(tmp_path, tmp_path, other, resume=False)  # a fresh run replaces the record
    assert json.loads((tmp_path / RUN_FILE).read_text())["data"]["windows"]["train"] == 12


def test_resume_without_a_record_starts_it(tmp_path):
    check_run(tmp_path / "ckpt", tmp_path / "chief", {"a": 1}, resume=True)
    assert json.loads((tmp_path / "ckpt" / RUN_FILE).read_text()) == {"a": 1}


def test_a_folder_in_the_records_place_is_named_not_the_temporary_file(tmp_path):
    (tmp_path / "ckpt" / RUN_FILE).mkdir(parents=True)
    with pytest.raises(OSError) as e:
        check_run(tmp_path / "ckpt", tmp_path / "ckpt", {"a": 1}, resume=False)
    assert e.value.filename == str(tmp_path / "ckpt" / RUN_FILE)
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [RUN_FILE]  # no .tmp left


def member_checkpoints(root, epochs: int = 2):
    """root/member-0 with one checkpoint per epoch of a (2,)-shaped variable, as a run leaves it."""
    import tensorflow as tf

    from aqi.checkpoints import manager

    ckpt = tf.train.Checkpoint(w=tf.Variable([1.0, 2.0]), epoch=tf.Variable(0))
    saver = manager(ckpt, root / "member-0")
    for e in range(1, epochs + 1):
        ckpt.epoch.assign(e)
        saver.save(checkpoint_number=e)
    return ckpt


def test_resume_restores_the_last_epoch(tmp_path):
    from aqi.checkpoints import resume_from

    ckpt = member_checkpoints(tmp_path)
    ckpt.epoch.assign(0)
    assert resume_from(ckpt, tmp_path / "member-0", print) == 2 and int(ckpt.epoch.numpy()) == 2
    said = []
    assert resume_from(ckpt, tmp_path / "member-9", said.append) == 0 and "no checkpoint" in said[0]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "checkpoint").write_text(""), "checkpoint is unreadable"),
        (lambda d: (d / "checkpoint").write_text("garbage"), "names no checkpoint"),
        (lambda d: (d / "ckpt-2.index").write_bytes(b"torn"), "ckpt-2 is unreadable"),
        (lambda d: next(d.glob("ckpt-2.data-*")).write_bytes(b""), "ckpt-2 is unreadable"),
        (lambda d: (d / "ckpt-2.index").unlink(), "ckpt-2 is unreadable"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_and_stays(tmp_path, damage, message):
    import tensorflow as tf

    from aqi.checkpoints import resume_from

    member_checkpoints(tmp_path)
    damage(tmp_path / "member-0")
    left = sorted(p.name for p in (tmp_path / "member-0").iterdir())
    ckpt = tf.train.Checkpoint(w=tf.Variable([0.0, 0.0]), epoch=tf.Variable(0))
    with pytest.raises(AqiError, match=rf"--resume: .*{message}.*drop --resume"):
        resume_from(ckpt, tmp_path / "member-0", print)
    assert sorted(p.name for p in (tmp_path / "member-0").iterdir()) == left


def test_resume_refuses_checkpoints_of_another_shape_or_of_no_record(tmp_path):
    import tensorflow as tf

    from aqi.checkpoints import resume_from

    member_checkpoints(tmp_path)
    wider = tf.train.Checkpoint(w=tf.Variable([0.0, 0.0, 0.0]), epoch=tf.Variable(0))
    with pytest.raises(AqiError, match="ckpt-2 is unreadable"):
        resume_from(wider, tmp_path / "member-0", print)
    with pytest.raises(AqiError, match=f"no {RUN_FILE} naming their run"):
        check_run(tmp_path, tmp_path, {"a": 1}, resume=True)
    assert not (tmp_path / RUN_FILE).exists()
