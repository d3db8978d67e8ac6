"""`faceattr serve`: the HTTP API (every answer and refusal), the worker pool's limits, and the web page
driven in headless Chromium. Tiny stand-in networks of the real architectures edit in the workers."""

import base64
import contextlib
import io
import multiprocessing
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from faceattr.data.images import demo_photo
from faceattr.nets.enet import ENet
from faceattr.nets.gnet import Generator
from faceattr.serve.app import WEB, create_app, sniff
from faceattr.serve.pool import EditPool, available_cpus, layout

R, ATTRS = 16, ["Male", "Smiling"]
MAX_UPLOAD = 2**20  # 1 MB: the tests' limit, so that too-large files stay small
MAX_PIXELS = 4_000_000
CHROMIUM = Path("/usr/bin/chromium")


def tiny_editor(**options) -> dict:
    torch.manual_seed(0)
    g = Generator(z_dim=8, resolution=R, width=64).eval().requires_grad_(False)
    e = ENet(ATTRS, resolution=R, width=64).eval().requires_grad_(False)
    return {"gnet": g, "enet": e, "encoder": False, "invert_steps": 3, "search_steps": 3, **options}


@pytest.fixture(scope="module")
def pool():
    pool = EditPool(tiny_editor(), workers=1, queue_size=4, max_pixels=MAX_PIXELS, threads=1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def slow_pool():
    """Long enough an S31 (no early stop) and S32 for polling to catch the edit in a stage."""
    pool = EditPool(tiny_editor(invert_steps=1500, search_steps=400), workers=1, queue_size=4,
                    max_pixels=MAX_PIXELS, threads=1)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def client(pool):
    with TestClient(create_app(pool, max_upload=MAX_UPLOAD)) as client:
        yield client


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return demo_photo().read_bytes()


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def png(jpeg) -> bytes:
    return encode(np.asarray(Image.open(io.BytesIO(jpeg))), "PNG")


def post(client, path, photo: bytes, name="photo.jpg", content_type="image/jpeg", attributes=("Male=1",), **form):
    return client.post(path, files={"photo": (name, photo, content_type)},
                       data={"attributes": list(attributes), **form})


def wait(client, job_id: str) -> dict:
    for _ in range(600):  # polls while the worker edits (a bound, not a timing)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never finished: {job}")


# ---- answers ----

def test_edit_returns_the_image_and_the_report(client, jpeg):
    r = post(client, "/v1/edit", jpeg, name="astronaut.jpg", strength="0.5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["media_type"] == "image/jpeg" and body["name"] == "astronaut-edited.jpg"
    edited = Image.open(io.BytesIO(base64.b64decode(body["image_base64"])))
    assert edited.format == "JPEG" and edited.size == (512, 512)
    (face,) = body["report"]["faces"]
    assert face["edits"] == {"Male": 1} and face["strength"] == 0.5 and set(face["s"]) == set(ATTRS)
    assert set(face["seconds"]) == {"detect", "align", "invert", "search", "decode", "paste"}
    assert set(body["seconds"]) == {"queued", "editing"}


def test_type_comes_from_the_bytes_and_several_attributes(client, png):
    """A PNG named and labelled as a JPEG is read as the PNG it is, and comes back as a PNG."""
    r = post(client, "/v1/edit", png, name="me.jpg", content_type="image/jpeg", attributes=["Male=0", "Smiling=1"])
    assert r.status_code == 200, r.text
    assert r.json()["media_type"] == "image/png" and r.json()["name"] == "me-edited.png"
    assert Image.open(io.BytesIO(base64.b64decode(r.json()["image_base64"]))).format == "PNG"
    assert r.json()["report"]["faces"][0]["edits"] == {"Male": 0, "Smiling": 1}
    r = post(client, "/v1/edit", png, name="me.png", attributes=["Male=0,Smiling=1"])  # or comma-separated
    assert r.status_code == 200 and r.json()["report"]["faces"][0]["edits"] == {"Male": 0, "Smiling": 1}


def test_job_api(client, jpeg):
    r = post(client, "/v1/jobs", jpeg, name="astronaut.jpg")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "editing") and r.headers["location"] == f"/v1/jobs/{job['id']}"
    done = wait(client, job["id"])
    assert done["state"] == "done" and done["report"]["faces"][0]["edits"] == {"Male": 1}
    image = client.get(done["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert 'filename="astronaut-edited.jpg"' in image.headers["content-disposition"]
    assert Image.open(io.BytesIO(image.content)).size == (512, 512)
    assert done["typical_seconds"] > 0


def test_a_job_reports_its_stages_in_order(slow_pool, jpeg):
    """Polled while it runs, a job is queued, then editing (before detection: no stage yet), then in
    detect, S31, S32, S33, then done: never out of order, whichever of them the polls catch."""
    order = ["queued", "editing", "detect", "S31", "S32", "S33", "done"]
    seen = []
    with TestClient(create_app(slow_pool, max_upload=MAX_UPLOAD)) as client:
        job_id = post(client, "/v1/jobs", jpeg).json()["id"]
        for _ in range(6000):  # a bound, not a timing
            job = client.get(f"/v1/jobs/{job_id}").json()
            where = job["stage"]["name"] if job["state"] == "editing" and job["stage"] else job["state"]
            if not seen or seen[-1] != where:
                seen.append(where)
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.02)
    assert seen[-1] == "done", seen
    assert [order.index(w) for w in seen] == sorted({order.index(w) for w in seen}), seen
    assert {"detect", "S31", "S32", "S33"} & set(seen), f"no stage seen while editing: {seen}"


def test_a_failed_job_says_why(client):
    blank = encode(np.full((200, 200, 3), 128, np.uint8), "PNG")
    job = wait(client, post(client, "/v1/jobs", blank, name="wall.png").json()["id"])
    assert job["state"] == "failed" and job["status"] == 422 and job["error"] == "wall.png: no face found"
    assert job["stage"]["name"] == "detect"  # where it stopped
    r = client.get(f"/v1/jobs/{job['id']}/image")
    assert r.status_code == 409 and "no face found" in r.json()["detail"]
    assert client.get("/v1/jobs/nosuchjob").status_code == 404
    assert client.get("/v1/jobs/nosuchjob/image").status_code == 404


def test_attributes_health_and_schema(client):
    assert client.get("/v1/attributes").json()["attributes"] == ATTRS
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["workers"] == 1
    assert health.json()["workers_starting"] == 0 and health.json()["edit_seconds"] > 0  # warmed up
    schema = client.get("/openapi.json").json()
    assert {"/v1/edit", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/image", "/v1/attributes",
            "/healthz"} <= set(schema["paths"])
    form = schema["paths"]["/v1/edit"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]] if "$ref" in form else form
    assert {"photo", "attributes", "strength"} <= set(form["properties"])


def test_the_page_is_served_and_needs_no_network(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith(("/static/", "data:")), src
        if src.startswith("/static/"):
            assert client.get(src).status_code == 200
    for f in WEB.iterdir():  # nothing fetched from elsewhere (a CDN): the page works offline
        assert not re.search(r"(https?:)?//[\w.-]+\.\w+/", f.read_text()), f.name


# ---- refusals ----

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_formats_are_known_by_their_bytes(fmt):
    assert sniff(encode(np.zeros((8, 8, 3), np.uint8), fmt)) == fmt


@pytest.mark.parametrize("name, photo, status, says", [
    ("notes.jpg", b"just some text, not a photo", 415, "not a JPEG, PNG, WebP, BMP or TIFF image"),
    ("anim.gif", b"GIF89a" + bytes(100), 415, "not a JPEG, PNG"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + bytes(100), 422, "a damaged PNG file"),
    ("big.png", "3000x2000", 413, "3000x2000 pixels is over the limit of 4 megapixels"),
    ("heavy.png", "1.01 MB", 413, "heavy.png: 1.01 MB is over the limit of 1 MB"),
    ("huge.png", "3 MB", 413, "the upload is over the limit of 1 MB for a photo"),
])
def test_bad_files(client, name, photo, status, says):
    if photo == "3000x2000":
        photo = encode(np.zeros((2000, 3000, 3), np.uint8), "PNG")
    elif isinstance(photo, str):  # a file of this size: PNG by its bytes, too large to read further
        photo = b"\x89PNG\r\n\x1a\n" + bytes(int(float(photo.split()[0]) * 2**20))
    r = post(client, "/v1/edit", photo, name=name)
    assert r.status_code == status and says in r.json()["detail"], r.text


def test_a_truncated_photo(client, jpeg):
    r = post(client, "/v1/edit", jpeg[:4000], name="cut.jpg")
    assert r.status_code == 422 and r.json()["detail"].startswith("cut.jpg: truncated or corrupt image"), r.text


def test_no_face(client):
    r = post(client, "/v1/edit", encode(np.full((300, 300, 3), 90, np.uint8), "PNG"), name="wall.png")
    assert r.status_code == 422 and r.json()["detail"] == "wall.png: no face found"


def test_a_streamed_body_over_the_limit(client):
    """Without a Content-Length the body is counted as it arrives."""
    chunks = (bytes(2**16) for _ in range(40))
    r = client.post("/v1/edit", content=chunks, headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]


@pytest.mark.parametrize("form, says", [
    ({"attributes": ["Bald=1"]}, "attributes: unknown attribute 'Bald'; available: Male, Smiling"),
    ({"attributes": ["Male"]}, "attributes: attribute Male: the target must be 0 (remove) or 1 (add), not ''"),
    ({"attributes": ["Male=2"]}, "attributes: attribute Male: the target must be 0 (remove) or 1 (add), not '2'"),
    ({"attributes": [", "]}, "attributes: no attribute to change; available: Male, Smiling"),
    ({"attributes": ["Male=1", "Male=0"]}, "attributes: attribute Male is given twice: name each attribute once"),
    ({"attributes": ["Male=1"], "strength": "5"}, "strength: Input should be less than or equal to 2"),
    ({"attributes": ["Male=1"], "strength": "-1"}, "strength: Input should be greater than or equal to 0"),
    ({"attributes": ["Male=1"], "strength": "nan"}, "strength: Input should be a finite number"),
    ({"attributes": ["Male=1"], "strength": "lots"}, "strength: Input should be a valid number"),
    ({}, "attributes: Field required"),
])
def test_bad_requests(client, jpeg, form, says):
    r = client.post("/v1/jobs", files={"photo": ("a.jpg", jpeg, "image/jpeg")}, data=form)
    assert r.status_code == 422 and r.json()["detail"].startswith(says), r.text
    assert "\n" not in r.json()["detail"]


def test_no_photo(client):
    r = client.post("/v1/edit", data={"attributes": ["Male=1"]}, files={"other": ("x", b"x")})
    assert r.status_code == 422 and r.json()["detail"] == "photo: Field required"


def test_busy_and_slow_server(jpeg):
    """One worker that cannot finish in time (S31 at the most steps and restarts) but an estimate that says it
    can: a full queue gives 429 with Retry-After, the time limit 504 (waiting or editing), and the killed worker
    is replaced; a closed pool 503."""
    slow = EditPool(tiny_editor(invert_steps=2000, restarts=16), workers=1, queue_size=1, time_limit=2, threads=1,
                    warmup=False, estimate=0.1)
    try:
        with TestClient(create_app(slow, max_upload=MAX_UPLOAD)) as client:
            first, second = (post(client, "/v1/jobs", jpeg) for _ in range(2))
            assert first.status_code == second.status_code == 202
            full = post(client, "/v1/jobs", jpeg)
            assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
            assert "queue is full" in full.json()["detail"]
            job = wait(client, first.json()["id"])
            assert job["status"] == 504 and "ran past the time limit of 2 s" in job["error"]
            assert job["stage"]["name"] == "S31"  # stopped in the long inversion
            job = wait(client, second.json()["id"])
            assert job["status"] == 504 and "time limit of 2 s" in job["error"] and job["stage"] is None
            ready(client)
            r = post(client, "/v1/edit", jpeg)
            assert r.status_code == 504 and "time limit of 2 s" in r.json()["detail"]
            assert ready(client)["workers"] == 1  # replaced after each kill
            slow.close()
            assert client.get("/healthz").status_code == 503
            assert post(client, "/v1/edit", jpeg).status_code == 503
    finally:
        slow.close()


def ready(client) -> dict:
    """/healthz once every worker is ready again (a killed one is replaced and warmed up first)."""
    for _ in range(600):  # a bound, not a timing
        health = client.get("/healthz").json()
        if health.get("workers") and not health.get("workers_starting"):
            return health
        time.sleep(0.1)
    raise AssertionError(f"no worker became ready: {health}")


def test_a_request_that_cannot_finish_in_time_is_refused_at_once(jpeg):
    """Issue 22.4: with one worker busy on an edit of about the time limit, a second request would only wait
    for a 504: it gets 429 with Retry-After at once (not a minute later), while the queue has room."""
    slow = EditPool(tiny_editor(invert_steps=2000, restarts=16), workers=1, queue_size=4, time_limit=4, threads=1,
                    warmup=False, estimate=3.0)
    try:
        with TestClient(create_app(slow, max_upload=MAX_UPLOAD)) as client:
            assert post(client, "/v1/jobs", jpeg).status_code == 202  # an idle worker: always let in
            start = time.monotonic()
            r = post(client, "/v1/edit", jpeg)
            assert time.monotonic() - start < 1.0 and r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1 and "past the time limit of 4 s" in r.json()["detail"]
            assert client.get("/healthz").json()["expected_wait_s"] > 0
    finally:
        slow.close()


def test_admission_plans_for_how_much_edit_times_vary(jpeg):
    """A job the mean edit time would let in, but that the spread of past edit times says would likely wait past
    the limit (and end in a 504), is refused at once with 429."""
    slow = EditPool(tiny_editor(invert_steps=2000, restarts=16), workers=1, queue_size=4, time_limit=10, threads=1,
                    warmup=False, estimate=4.0)
    try:
        with TestClient(create_app(slow, max_upload=MAX_UPLOAD)) as client:
            assert post(client, "/v1/jobs", jpeg).status_code == 202  # an idle worker: let in; it stays busy
            steady = client.get("/healthz").json()
            assert steady["edit_spread_s"] == 0
            with slow._lock:  # a history of edits of 4 s on average that took 1 or 7 s (the pool's own bookkeeping)
                for seconds in (1.0, 7.0, 1.0, 7.0):
                    slow._measured(seconds)
            varied = client.get("/healthz").json()
            assert abs(varied["edit_seconds"] - 4.0) < 0.5 and varied["edit_spread_s"] > 2.0
            assert varied["expected_wait_s"] > steady["expected_wait_s"] + 4.0
            # the mean alone plans wait (< 4.4 s) + edit (4.4 s) < 10 s; with the spread it is about 19 s
            r = post(client, "/v1/edit", jpeg)
            assert r.status_code == 429 and "past the time limit of 10 s" in r.json()["detail"], r.text
    finally:
        slow.close()


def test_an_idle_worker_that_dies_is_replaced_before_a_job_reaches_it(jpeg):
    """Issue 22.4: a worker killed while idle costs no request a 500: the next edit is served (by a fresh worker,
    warmed up before it takes it), and one found dead without a request is replaced on its own."""
    before = {p.pid for p in multiprocessing.active_children()}
    pool = EditPool(tiny_editor(), workers=1, queue_size=2, max_pixels=MAX_PIXELS, threads=1)
    try:
        (pid,) = {p.pid for p in multiprocessing.active_children() if p.name == "faceattr-edit"} - before
        with TestClient(create_app(pool, max_upload=MAX_UPLOAD)) as client:
            assert client.get("/healthz").json()["edit_seconds"] > 0  # measured by the warm-up, before any request
            os.kill(pid, signal.SIGKILL)
            r = post(client, "/v1/edit", jpeg)  # at once: the job reaches the dead worker, or its replacement
            assert r.status_code == 200, r.text
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            for _ in range(600):  # no request: the health check finds it and replaces it (a bound, not a timing)
                if pool.pids()[0] not in (None, pid):
                    break
                time.sleep(0.1)
            assert pool.pids()[0] not in (None, pid)
            assert ready(client)["workers"] == 1
            assert post(client, "/v1/edit", jpeg).status_code == 200
    finally:
        pool.close()


def test_threads_never_oversubscribe_the_cores():
    """Issue 22.4: workers x threads per worker <= cores by default, whichever of the two is given (unless more
    workers than cores are asked for, then one thread each); 2 cores: 2 workers x 1 thread. And the worker runs
    with them: torch's threads, OMP/MKL set before torch loaded."""
    assert layout(2) == (2, 1) and layout(1) == (1, 1)
    for cpus in range(1, 65):
        for workers in [None, *range(1, cpus + 1)]:
            for threads in [None, *range(1, cpus + 1)]:
                w, t = layout(cpus, workers, threads)
                assert (workers is None or w == workers) and (threads is None or t == threads) and w >= 1 and t >= 1
                if workers is None or threads is None:
                    assert w * t <= cpus, (cpus, workers, threads, w, t)
        assert layout(cpus, cpus + 3) == (cpus + 3, 1)
    pool = EditPool(tiny_editor(), workers=1, max_pixels=MAX_PIXELS, warmup=False)
    try:
        (facts,) = pool.worker_facts()
        assert pool.threads == facts["threads"] == available_cpus() and facts["interop_threads"] == 1
        assert facts["env"] == {name: str(pool.threads) for name in facts["env"]} and "OMP_NUM_THREADS" in facts["env"]
        assert pool.stats()["threads_per_worker"] == pool.threads
    finally:
        pool.close()


# ---- the web page in headless Chromium ----

@contextlib.contextmanager
def running(pool):
    """The app over `pool` served on a free loopback port -> its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(pool, max_upload=MAX_UPLOAD), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()


@pytest.fixture(scope="module")
def live_server(slow_pool):
    with running(slow_pool) as url:
        yield url


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
def test_page_edits_a_photo_in_chromium(live_server, png, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    photo = tmp_path / "portrait.png"
    photo.write_bytes(png)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))  # never a browser of Playwright's own
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(live_server)
        page.set_input_files("#file", photo)  # the picker
        expect(page.locator("#file-name")).to_have_text("portrait.png")
        page.locator(".attr", has_text="Male").get_by_text("add").click()
        page.click("#edit")
        rows = page.wait_for_function("""() => {  // the classes of the rows once an edit stage shows as running
            const rows = [...document.querySelectorAll("#stages li")];
            return rows.findIndex((li) => li.className === "running") > 0 && rows.map((li) => li.className);
        }""", timeout=60_000).json_value()
        at = rows.index("running")
        assert rows == ["done"] * at + ["running"] + [""] * (len(rows) - at - 1), rows
        expect(page.locator("#result")).to_be_visible(timeout=60_000)
        for stage in ("queued", "detect", "S31", "S32", "S33"):
            row = page.locator(f'#stages [data-stage="{stage}"]')
            expect(row).to_have_class("done")
            expect(row.locator(".time")).to_have_text(re.compile(r"\d+\.\d+ s"))
        page.wait_for_function("document.getElementById('after').naturalWidth > 0")
        assert page.locator("#scores").inner_text().count("Male") == 1
        with page.expect_download() as download:
            page.click("#download")
        assert download.value.suggested_filename == "portrait-edited.png"
        assert Image.open(download.value.path()).size == (512, 512)
        page.click(".views button[data-view=side]")
        expect(page.locator("#compare")).to_have_class("compare side")

        # drag and drop: a photo without a face, whose refusal the page shows
        blank = base64.b64encode(encode(np.full((120, 120, 3), 200, np.uint8), "PNG")).decode()
        page.evaluate("""(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "wall.png", {type: "image/png"}));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
        }""", blank)
        expect(page.locator("#file-name")).to_have_text("wall.png")
        page.click("#edit")
        expect(page.locator("#message")).to_have_text("wall.png: no face found", timeout=60_000)
        browser.close()
    assert all(url.startswith(live_server) or url.startswith(("data:", "blob:")) for url in requests), requests


@pytest.fixture(scope="module")
def style_pool():
    """A pool on MobileStyleGAN (random directions, the tiny E-Net): one whose edits re-render."""
    from faceattr.nets.directions import Directions

    directions = Directions(ATTRS, 512)
    vectors = torch.randn(2, 512, generator=torch.Generator().manual_seed(3))
    directions.vectors.copy_(torch.nn.functional.normalize(vectors, dim=1))
    args = {**tiny_editor(search_steps=1, tune_steps=2, max_distance=3.0), "gnet": None, "directions": directions}
    pool = EditPool(args, workers=1, queue_size=8, max_pixels=MAX_PIXELS, threads=1)
    yield pool
    pool.close()


def test_a_finished_edit_re_renders_at_another_strength(style_pool, jpeg):
    """Issue 19.4: with MobileStyleGAN the slider's request re-renders the job from its kept latents (decode and
    paste only): strength 0 is the photo, another strength another image; an edit pushed out of the worker's
    last SESSIONS_KEPT is 410 (edit again); a bad strength is 422."""
    from faceattr.serve.pool import SESSIONS_KEPT

    with TestClient(create_app(style_pool, max_upload=MAX_UPLOAD)) as client:
        assert client.get("/v1/attributes").json()["rerender"] is True
        first = post(client, "/v1/jobs", jpeg).json()["id"]
        assert wait(client, first)["state"] == "done"
        edited = client.get(f"/v1/jobs/{first}/image").content
        zero = client.post(f"/v1/jobs/{first}/render", data={"strength": "0"})
        assert zero.status_code == 200 and zero.headers["content-type"] == "image/jpeg"
        photo = np.asarray(Image.open(io.BytesIO(jpeg)), np.float32)
        assert np.abs(np.asarray(Image.open(io.BytesIO(zero.content)), np.float32) - photo).mean() < 2
        half = client.post(f"/v1/jobs/{first}/render", data={"strength": "0.5"}).content
        assert half not in (zero.content, edited)
        assert client.post(f"/v1/jobs/{first}/render", data={"strength": "3"}).status_code == 422
        for _ in range(SESSIONS_KEPT):
            assert wait(client, post(client, "/v1/jobs", jpeg).json()["id"])["state"] == "done"
        gone = client.post(f"/v1/jobs/{first}/render", data={"strength": "0.5"})
        assert gone.status_code == 410 and "edit again" in gone.json()["detail"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
def test_the_page_slider_re_renders_a_finished_edit(style_pool, png, tmp_path):
    """Moving the strength slider after an edit shows the re-rendered photo (no new job)."""
    from playwright.sync_api import expect, sync_playwright

    photo = tmp_path / "portrait.png"
    photo.write_bytes(png)
    with running(style_pool) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page()
        posts = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.goto(url)
        page.set_input_files("#file", photo)
        page.locator(".attr", has_text="Male").get_by_text("add").click()
        page.click("#edit")
        expect(page.locator("#result")).to_be_visible(timeout=60_000)
        assert page.locator("#after").get_attribute("src").startswith("/v1/jobs/")
        page.locator("#strength").fill("0.5")
        expect(page.locator("#after")).to_have_attribute("src", re.compile(r"^blob:"), timeout=30_000)
        page.wait_for_function("document.getElementById('after').naturalWidth > 0")
        assert page.locator("#download").get_attribute("href").startswith("blob:")
        assert sum(u.endswith("/v1/jobs") for u in posts) == 1 and any(u.endswith("/render") for u in posts)
        browser.close()


def test_a_re_render_that_fails_in_the_worker_is_a_one_line_500(style_pool, jpeg, monkeypatch):
    """A bug in the worker's re-render (the worker logs it and stays up) reaches the page as JSON, not a bare 500."""
    from faceattr.serve.pool import RenderFailed

    def failing(job, strength):
        raise RenderFailed("the re-render failed unexpectedly (the server log has the details)")

    with TestClient(create_app(style_pool, max_upload=MAX_UPLOAD)) as client:
        job = post(client, "/v1/jobs", jpeg).json()["id"]
        assert wait(client, job)["state"] == "done"
        monkeypatch.setattr(style_pool, "render", failing)
        r = client.post(f"/v1/jobs/{job}/render", data={"strength": "0.5"})
        assert r.status_code == 500 and r.json()["detail"].count("\n") == 0 and "server log" in r.json()["detail"]


def test_the_patent_g_net_cannot_re_render(client, jpeg):
    job = post(client, "/v1/jobs", jpeg).json()["id"]
    assert wait(client, job)["state"] == "done"
    r = client.post(f"/v1/jobs/{job}/render", data={"strength": "0.5"})
    assert r.status_code == 409 and "edit again" in r.json()["detail"]
