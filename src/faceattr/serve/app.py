"""`faceattr serve`: the HTTP API and the web page in front of an EditPool (issue #7).

POST /v1/edit edits synchronously; POST /v1/jobs queues and GET /v1/jobs/{id} follows the job (its
place in the queue, then the stage of the edit running), which is what the page does to show its
progress. Uploads are checked here, before they take a place in
the queue: body size (413), file type from the bytes' signature (415), pixel count from the
header (413), attributes and strength (422). What only decoding or editing can find (a corrupt
file, no face) comes back from the worker as 422.
"""

import asyncio
import base64
import io
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from faceattr.edit.options import MAX_STRENGTH, parse_edits
from faceattr.errors import FaceattrError
from faceattr.serve.pool import Busy, EditPool, Gone, Job, NoWorker, RenderFailed

FORM_OVERHEAD = 64 * 1024  # multipart framing and the text fields, on top of the photo
WEB = Path(str(resources.files("faceattr") / "serve" / "web"))

# The formats we accept, by their first bytes (the name and the Content-Type are the client's word).
SIGNATURES = [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
              (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF")]


def sniff(data: bytes) -> str | None:
    """The image format the bytes start with: PNG, JPEG, WEBP, BMP, TIFF, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in SIGNATURES if data.startswith(magic)), None)


def display_name(filename: str | None) -> str:
    """A client's file name made safe for one-line messages and downloads."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename or "").name).strip()[:80]
    return name or "photo"


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, found while it streams in, before
    anything parses it or spools it to disk. Bodies within the limit are passed on whole."""

    def __init__(self, app, limit: int, message: str):
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send):
        await JSONResponse({"detail": self.message}, status_code=413,
                           headers={"Connection": "close"})({"type": "http"}, None, send)


@dataclass
class EditRequest:
    photo: bytes
    name: str
    output_format: str
    edits: dict
    strength: float


def create_app(pool: EditPool, max_upload: int = 10 * 2**20) -> FastAPI:
    """The app over a running pool (the caller starts and closes it). max_upload: bytes per photo."""
    app = FastAPI(title="faceattr", version="1", docs_url=None, redoc_url=None,  # the docs pages load a CDN
                  description="Change face attributes in photos (patent CN 107665339 B, S31-S33).")

    @app.exception_handler(RequestValidationError)
    async def one_line(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{field}: {first['msg']}"}, status_code=422)

    async def edit_request(
        photo: UploadFile = File(description="the photo: JPEG, PNG, WebP, BMP or TIFF"),
        attributes: list[str] = Form(description="NAME=1 to add, NAME=0 to remove; repeat the field or "
                                     "separate with commas", examples=["Male=0"]),
        strength: float = Form(1.0, ge=0.0, le=MAX_STRENGTH, allow_inf_nan=False,
                               description="how far to move each score toward its goal (0: none, 1: to it)"),
    ) -> EditRequest:
        name, data = display_name(photo.filename), await photo.read()
        if len(data) > max_upload:
            raise HTTPException(413, f"{name}: {len(data) / 2**20:.2f} MB is over the limit of "
                                     f"{max_upload / 2**20:g} MB")
        fmt = sniff(data)
        if fmt is None:
            raise HTTPException(415, f"{name}: not a JPEG, PNG, WebP, BMP or TIFF image")
        try:
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:  # the header only
                width, height = img.size
        except Image.DecompressionBombError:
            raise HTTPException(413, f"{name}: too many pixels for a photo") from None
        except Exception:  # noqa: BLE001  Pillow raises many types for a damaged header
            raise HTTPException(422, f"{name}: a damaged {fmt} file (its header cannot be read)") from None
        if width * height > pool.max_pixels:
            raise HTTPException(413, f"{name}: {width}x{height} pixels is over the limit of "
                                     f"{pool.max_pixels / 1e6:g} megapixels")
        try:
            edits = parse_edits(attributes, pool.attr_names)
        except FaceattrError as e:
            raise HTTPException(422, f"attributes: {e}") from None
        return EditRequest(data, name, "JPEG" if fmt == "JPEG" else "PNG", edits, strength)

    def submit(req: EditRequest) -> Job:
        try:
            return pool.submit(req.photo, req.name, req.edits, req.strength, req.output_format)
        except Busy as e:  # the queue is full, or the jobs ahead would keep this one past the time limit
            raise HTTPException(429, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        except NoWorker as e:
            raise HTTPException(503, str(e)) from None

    def seconds(job: Job) -> dict:
        now = time.monotonic()
        editing = (job.finished or now) - job.started if job.started else 0.0
        return {"queued": round((job.started or job.finished or now) - job.created, 3), "editing": round(editing, 3)}

    def stage(job: Job) -> dict | None:
        """The stage running (or where the job failed) and its seconds so far; None before detection."""
        if (current := job.stage) is None:
            return None
        return {"name": current.name, "seconds": round((job.finished or time.monotonic()) - current.started, 3)}

    def describe(job: Job) -> dict:
        out = {"id": job.id, "state": job.state, "name": job.name, "seconds": seconds(job),
               "typical_seconds": pool.typical_seconds()}
        if job.state == "queued":
            out["position"] = pool.position(job)
        elif job.state == "editing":
            out["stage"] = stage(job)
        elif job.state == "done":
            out.update(report=job.report, image=f"/v1/jobs/{job.id}/image", media_type=job.media_type)
        elif job.state == "failed":
            out.update(status=job.status, error=job.error, stage=stage(job))
        return out

    def edited_name(job: Job) -> str:
        return f"{Path(job.name).stem}-edited.{'jpg' if job.output_format == 'JPEG' else 'png'}"

    @app.get("/healthz", summary="whether the server can edit: its workers ready (loaded and warmed up), "
             "those starting, the estimated seconds per edit and the expected wait for a new one")
    def healthz():
        stats = pool.stats()
        status = "ok" if stats["workers"] else "starting" if stats["workers_starting"] else "no worker"
        return JSONResponse({"status": status, **stats}, status_code=200 if stats["workers"] else 503)

    @app.get("/v1/attributes", summary="the attributes E-Net judges, and the strength range")
    def attributes():
        return {"attributes": pool.attr_names, "targets": {"1": "add", "0": "remove"},
                "strength": {"min": 0.0, "max": MAX_STRENGTH, "default": 1.0}, "rerender": pool.rerender}

    @app.post("/v1/edit", summary="edit a photo and wait for it",
              response_description="the report and the edited photo (base64; JPEG for a JPEG, else PNG)")
    async def edit(req: EditRequest = Depends(edit_request)):
        job = submit(req)
        done = asyncio.wrap_future(job.future)  # awaited shielded: cancelling it would cancel the job's future
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout=max(0.0, job.deadline - time.monotonic()))
        except TimeoutError:
            pool.expire(job)  # a job still queued fails now; one being edited is stopped by its runner
            await asyncio.shield(done)
        pool.forget(job)
        if job.state == "failed":
            raise HTTPException(job.status, job.error)
        return {"report": job.report, "media_type": job.media_type, "name": edited_name(job),
                "seconds": seconds(job), "image_base64": base64.b64encode(job.image).decode()}

    @app.post("/v1/jobs", status_code=202, summary="queue an edit; follow it at /v1/jobs/{id}")
    def create_job(req: EditRequest = Depends(edit_request)):
        job = submit(req)
        return JSONResponse(describe(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def find(job_id: str) -> Job:
        job = pool.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept for the last {pool.keep} edits)")
        return job

    @app.get("/v1/jobs/{job_id}", summary="a job's state: queued (with its place), editing (with its stage: "
             "detect, S31, S32 or S33), done (with its report) or failed (with why and the stage it stopped in)")
    def get_job(job_id: str):
        return describe(find(job_id))

    @app.get("/v1/jobs/{job_id}/image", summary="the edited photo of a finished job",
             responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    def job_image(job_id: str):
        job = find(job_id)
        if job.state != "done":
            raise HTTPException(409, f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
        return Response(job.image, media_type=job.media_type,
                        headers={"Content-Disposition": f'inline; filename="{edited_name(job)}"'})

    @app.post("/v1/jobs/{job_id}/render", summary="a finished job's edit at another strength: decoded and pasted "
              "again from the latents its search found (no new search; for a strength slider)",
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    def job_render(job_id: str, strength: float = Form(ge=0.0, le=MAX_STRENGTH, allow_inf_nan=False,
                                                        description="0: the photo, 1: the edit, up to 2")):
        job = find(job_id)
        if not pool.rerender:
            raise HTTPException(409, "this server's G-Net cannot re-render at another strength (the patent G-Net's "
                                     "strength is where its search stops): edit again with the new strength")
        if job.state != "done":
            raise HTTPException(409, f"job {job_id} is {job.state}" + (f": {job.error}" if job.error else ""))
        try:
            image = pool.render(job, strength)
        except Gone as e:
            raise HTTPException(410, str(e)) from None
        except FaceattrError as e:
            raise HTTPException(422, str(e)) from None
        except NoWorker as e:
            raise HTTPException(503, str(e)) from None
        except RenderFailed as e:
            raise HTTPException(500, str(e)) from None
        return Response(image, media_type=job.media_type)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.add_middleware(BodyLimit, limit=max_upload + FORM_OVERHEAD,
                       message=f"the upload is over the limit of {max_upload / 2**20:g} MB for a photo")
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, editor_args: dict | None = None, max_upload: int = 10 * 2**20,
          **pool_options):
    """Load the editor in the worker processes, then serve until interrupted."""
    import uvicorn

    if not WEB.is_dir():
        raise FaceattrError(f"{WEB}: the web page's files are missing from the package")
    pool = EditPool(editor_args, **pool_options)
    try:
        estimate = pool.typical_seconds()
        print(f"faceattr serve: {pool.workers} worker(s) x {pool.threads} thread(s), warm-up edit "
              f"{'failed' if estimate is None else f'{estimate:.1f} s'}, attributes {', '.join(pool.attr_names)}; "
              f"page at http://{host}:{port}/", flush=True)
        uvicorn.run(create_app(pool, max_upload), host=host, port=port, log_level="info")
    finally:
        pool.close()
