"""`likeness batch`: specs, a real local process pool with a corrupt photo and a video, a worker killed mid-batch
(the real process, SIGKILL), the rerun, and a real two-node Ray cluster on this machine."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import dev_photo
from likeness.service.batch import read_spec
from likeness.errors import BadInput

PHOTOS = ["dev_002_london_009_03.jpg", "dev_003_london_009_08.jpg", "dev_006_london_025_03.jpg"]


def likeness(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "likeness", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=600, **kw)


def link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def report(out: Path) -> dict:
    return json.loads((out / "batch_report.json").read_text())


def test_specs_folder_csv_json_glob(tmp_path):
    for rel in ("people/ann/a.jpg", "people/ann/b.png", "people/ann/notes.txt", "people/bob.jpg",
                "people/talk.mp4", "people/.hidden.jpg", "people/Bob.JPG"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    jobs = {j.name: j for j in read_spec(str(tmp_path / "people"), 512)}
    assert set(jobs) == {"ann", "Bob", "bob_2", "talk"}  # names stay unique on case-insensitive file systems
    assert jobs["ann"].kind == "photos" and [Path(p).name for p in jobs["ann"].inputs] == ["a.jpg", "b.png"]
    assert jobs["talk"].kind == "video" and jobs["talk"].texture_size == 512
    (tmp_path / "jobs.csv").write_text("name,photos,video,texture_size\nx y,people/ann/a.jpg;people/bob.jpg,,256\n"
                                       "clip,,people/talk.mp4,\n")
    csv_jobs = read_spec(str(tmp_path / "jobs.csv"), 2048)
    assert [(j.name, j.kind, len(j.inputs), j.texture_size) for j in csv_jobs] == [
        ("x_y", "photos", 2, 256), ("clip", "video", 1, 1024)]
    assert csv_jobs[0].inputs[0] == str((tmp_path / "people/ann/a.jpg").resolve())  # relative to the list
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": [{"photos": ["people/bob.jpg"]}]}))
    assert [j.name for j in read_spec(str(tmp_path / "jobs.json"))] == ["bob"]
    assert len(read_spec(str(tmp_path / "people" / "*" / "*.jpg"))) == 1
    for bad, text in (("jobs_bad.json", '[{"name": "n"}]'), ("none.csv", "name,size\nn,3\n")):
        (tmp_path / bad).write_text(text)
        with pytest.raises(BadInput):
            read_spec(str(tmp_path / bad))
    with pytest.raises(BadInput, match="names no photos"):
        read_spec(str(tmp_path / "people" / "*.txt"))
    with pytest.raises(BadInput, match="not a folder"):
        read_spec(str(tmp_path / "missing"))


def test_local_batch_a_corrupt_photo_fails_only_its_job_and_a_rerun_skips(ict_path, tmp_path):
    from test_track import _short_clip

    spec = tmp_path / "spec"
    spec.mkdir()
    Path(_short_clip(spec, frames=8)).rename(spec / "talk.avi")
    link(dev_photo(PHOTOS[0]), spec / "ann" / "1.jpg")
    link(dev_photo(PHOTOS[1]), spec / "ann" / "2.jpg")
    link(dev_photo(PHOTOS[2]), spec / "cid.jpg")
    (spec / "corrupt.jpg").write_bytes(dev_photo(PHOTOS[2]).read_bytes()[:3000])  # a truncated JPEG
    out = tmp_path / "out"
    proc = likeness("batch", spec, "-o", out, "--texture-size", 256, "--workers", 2, "--model", ict_path)
    assert proc.returncode == 3, proc.stderr  # some jobs failed
    jobs = {j["name"]: j for j in report(out)["jobs"]}
    assert {n: j["status"] for n, j in jobs.items()} == {"ann": "ok", "cid": "ok", "corrupt": "failed", "talk": "ok"}
    assert jobs["corrupt"]["error"]["type"] == "BadInput" and "corrupt.jpg" in jobs["corrupt"]["error"]["message"]
    assert "corrupt" in proc.stderr and "3 ok, 0 skipped" in proc.stderr  # the summary table
    assert json.loads((out / "talk" / "track.json").read_text())["frames"] and (out / "talk" / "head").is_dir()
    assert len(json.loads((out / "ann" / "manifest.json").read_text())["photos"]) == 2
    assert not (out / "corrupt").exists()
    assert len({j["worker"] for j in jobs.values()}) <= 2 and all(j["worker_peak_rss_mb"] > 50 for j in jobs.values())
    before = (out / "ann" / "manifest.json").stat().st_mtime_ns
    (spec / "corrupt.jpg").unlink()
    again = likeness("batch", spec, "-o", out, "--texture-size", 256, "--workers", 1, "--model", ict_path)
    assert again.returncode == 0, again.stderr
    assert {j["name"]: j["status"] for j in report(out)["jobs"]} == {"ann": "skipped", "cid": "skipped",
                                                                      "talk": "skipped"}
    assert (out / "ann" / "manifest.json").stat().st_mtime_ns == before


def test_a_killed_worker_loses_no_finished_bundle_and_the_batch_completes(ict_path, tmp_path):
    spec = tmp_path / "spec"
    for i, name in enumerate(PHOTOS):
        link(dev_photo(name), spec / f"p{i}.jpg")
    out = tmp_path / "out"
    # every job pauses 3 s in its write stage: time to kill the worker while its bundle is half-written
    proc = subprocess.Popen([sys.executable, "-m", "likeness", "batch", spec, "-o", out, "--texture-size", "256",
                             "--workers", "1", "--model", str(ict_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, LIKENESS_FAULT="write:slow"))
    try:
        deadline = time.time() + 240
        while not ((out / "batch_report.json").is_file() and report(out)["jobs"]) and time.time() < deadline:
            time.sleep(0.2)
        first = report(out)["jobs"][0]
        assert first["status"] == "ok"
        time.sleep(1.0)  # the worker is now in the next job's pause
        os.kill(int(first["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    jobs = report(out)["jobs"]
    assert [j["status"] for j in jobs] == ["ok"] * 3
    assert sorted(j["attempts"] for j in jobs) == [1, 1, 2]  # the lost job ran again in a fresh worker
    assert len({j["worker"] for j in jobs}) == 2
    assert (out / first["name"] / "manifest.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["batch_report.json", "p0", "p1", "p2"]  # no temporary folders


def test_a_killed_batch_is_completed_by_the_rerun(ict_path, tmp_path):
    spec = tmp_path / "spec"
    for i, name in enumerate(PHOTOS[:2]):
        link(dev_photo(name), spec / f"p{i}.jpg")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "likeness", "batch", spec, "-o", out, "--texture-size", "256",
                             "--workers", "1", "--model", str(ict_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, LIKENESS_FAULT="write:slow"),
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while not ((out / "batch_report.json").is_file() and report(out)["jobs"]) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker, mid-job
        proc.wait(timeout=30)
    finally:
        proc.kill()
    done = report(out)["jobs"][0]["name"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".p")]  # the killed job's half-written bundle
    again = likeness("batch", spec, "-o", out, "--texture-size", 256, "--workers", 1, "--model", ict_path)
    assert again.returncode == 0, again.stderr
    statuses = {j["name"]: j["status"] for j in report(out)["jobs"]}
    assert statuses == {done: "skipped", ({"p0", "p1"} - {done}).pop(): "ok"}
    assert sorted(p.name for p in out.iterdir()) == ["batch_report.json", "p0", "p1"]


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """A real two-node Ray cluster on this machine: `ray start --head` plus a second node, one CPU each."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    tmp = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_TMPDIR=str(tmp))
    port = 6400 + os.getpid() % 500
    common = ["--num-cpus=1", "--disable-usage-stats", "--block", "--object-store-memory=100000000"]
    procs = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false",
                               *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        import ray

        address = f"127.0.0.1:{port}"
        _wait_for(lambda: _nodes(ray, address, env) >= 1)
        procs.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        _wait_for(lambda: _nodes(ray, address, env) >= 2)
        yield address, env
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes on SIGTERM
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _nodes(ray, address, env) -> int:
    probe = ("import ray; ray.init(address=%r, log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    return int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0


def _wait_for(condition, timeout=90):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail("the Ray cluster did not come up")
        time.sleep(1)


def test_ray_batch_on_two_nodes_with_a_corrupt_photo(ray_cluster, ict_path, tmp_path):
    address, env = ray_cluster
    spec = tmp_path / "spec"
    link(dev_photo(PHOTOS[0]), spec / "a.jpg")
    link(dev_photo(PHOTOS[2]), spec / "b.jpg")
    (spec / "bad.jpg").write_text("not a photo")
    out = tmp_path / "out"
    proc = likeness("batch", spec, "-o", out, "--texture-size", 256, "--ray", address, "--model", ict_path, env=env)
    assert proc.returncode == 3, proc.stderr
    rep = report(out)
    assert rep["backend"] == "ray" and rep["ray_nodes"] == 2 and rep["workers"] == 2
    jobs = {j["name"]: j for j in rep["jobs"]}
    assert {n: j["status"] for n, j in jobs.items()} == {"a": "ok", "b": "ok", "bad": "failed"}
    assert jobs["bad"]["error"]["type"] == "BadInput"
    assert len({j["node"] for j in jobs.values()}) == 2  # both nodes worked
    assert (out / "a" / "manifest.json").is_file() and (out / "b" / "manifest.json").is_file()


def test_batch_options_reach_every_photo_job(ict_path, tmp_path):
    """--occlusion, --lens and --no-encoder apply to the batch's photo jobs as they do to `likeness reconstruct`;
    a lens out of range is refused before any job runs."""
    spec = tmp_path / "spec"
    link(dev_photo(PHOTOS[2]), spec / "cid.jpg")
    out = tmp_path / "out"
    bad = likeness("batch", spec, "-o", out, "--lens", 5000, "--model", ict_path)
    assert bad.returncode == 2 and "lens" in bad.stderr and not out.exists()
    proc = likeness("batch", spec, "-o", out, "--texture-size", 128, "--workers", 1, "--model", ict_path,
                    "--occlusion", "--lens", 85, "--no-encoder")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "cid" / "manifest.json").read_text())
    assert manifest["photos"][0]["light"]["occlusion"] is True
    assert "expression_encoder" not in manifest["photos"][0]["fit"]["evidence"]
    assert report(out)["jobs"][0]["expression_encoder"] is False
    camera = manifest["photos"][0]["camera"]
    assert camera["focal_source"] == "lens"  # the photo has no EXIF: 85 mm on its long side
    width, height = manifest["photos"][0]["image_size"]
    assert camera["focal_px"] == pytest.approx(85 / 36 * max(width, height), rel=1e-3)
    assert report(out)["options"] == {"occlusion": True, "lens_mm": 85.0, "encoder": False}
