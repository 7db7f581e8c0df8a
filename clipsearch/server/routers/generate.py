"""Generation as a background job: POST starts it, GET polls it, DELETE cancels it.

One job at a time per server. While it runs, `GET /api/generate/{id}` reports the step, the
loss and the URL of the latest preview frame; when it is done, the new picture is in the
library (source `generated`) and the job holds its id and a search link. The request names
no paths: the VQGAN is the server library's default, an init picture is a library image id.
`GET /api/generate/options` says which drawers this library can use (the transformer ones
are listed only when the library has a transformer checkpoint). With a transformer
drawer the result lists the candidates, best first, each with its CLIP score and its picture
(a PNG data URL); the best is the picture added to the library.

Errors speak in the request's (and the page's) terms, never in the CLI's flags: they carry
`field`, the request field at fault (`prompts`, `size` for width/height, `drawer`), which the
page maps to its control; the CLI keeps its own wording (`--vqgan`, `--drawer`, `--size`).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from io import BytesIO
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from clipsearch.errors import ClipsearchError, PromptError, VQGANError
from clipsearch.server.context import Ctx
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature
from clipsearch.server.schemas import ErrorResponse, GenerateBody, GenerateOptions, Job

router = APIRouter(prefix="/api/generate", tags=["generate"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="A job id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
}


# What the page calls its controls, for hints that send the user to one.
PIXELS_HINT = "Choose “Pixels” under Drawer: it needs no VQGAN."
# `clipsearch generate`'s flags, which mean nothing to someone on the page.
_CLI_WORDS = re.compile(
    r"--(?:vqgan|drawer|size|out|steps|cutouts|lr|seed|init|frames|json|keep-on-interrupt"
    r"|transformer|candidates|temperature|top-k|top-p)\b"
)


class FieldError(ApiError):
    """A 400 about one field of the request; its answer carries `field` (see the module)."""

    def __init__(self, field: str | None, message: str, hint: str | None = None) -> None:
        super().__init__(400, "bad_request", message, hint)
        self.field = field

    def payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "field": self.field}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.payload()}, status_code=self.status)


class _Job:
    """The mutable state of one job (guarded by the manager's lock)."""

    def __init__(self, body: GenerateBody) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.body = body
        self.state = "running"
        self.step, self.loss, self.preview, self.preview_step = 0, None, None, None
        self.started_at, self.finished_at = time.time(), None
        self.cancel = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "prompts": self.body.prompts,
            "step": self.step,
            "steps": 0 if self.body.drawer == "transformer" else self.body.steps,
            "drawer": self.body.drawer,
            "candidates": self.body.candidates,
            "loss": self.loss,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "preview_url": (
                f"/api/generate/{self.id}/preview?step={self.preview_step}"
                if self.preview is not None
                else None
            ),
            "preview_step": self.preview_step,
            "cancel_requested": self.cancel.is_set(),
            "result": self.result,
            "error": self.error,
        }


class Jobs:
    """The server's generation jobs: at most one running; finished ones are kept (last 20)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}

    def running(self) -> _Job | None:
        return next((j for j in self.jobs.values() if j.state == "running"), None)

    def get(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no generation job {job_id}")
        return job

    def start(self, library: Any, body: GenerateBody) -> _Job:
        req = _request(library, body)
        with self.lock:
            busy = self.running()
            if busy is not None:
                raise ApiError(
                    409,
                    "busy",
                    f"a generation is already running (job {busy.id})",
                    "Wait for it to finish, or cancel it: DELETE /api/generate/" + busy.id,
                )
            job = _Job(body)
            self.jobs[job.id] = job
            for old in list(self.jobs)[:-20]:
                del self.jobs[old]
        threading.Thread(
            target=self._run, args=(library, req, job), daemon=True, name=f"generate-{job.id}"
        ).start()
        return job

    def _run(self, library: Any, req: Any, job: _Job) -> None:
        from clipsearch.generate.run import GenerationCancelled, generate

        def progress(report: Any) -> None:
            preview = None
            if report.image is not None:
                buf = BytesIO()
                report.image.save(buf, format="PNG")
                preview = buf.getvalue()
            with self.lock:
                job.step, job.loss = report.step, round(report.loss, 4)
                if preview is not None:
                    job.preview, job.preview_step = preview, report.step

        try:
            result = generate(library, req, progress=progress, should_stop=job.cancel.is_set)
            out = result.to_dict()
            for cand, image in zip(out["candidates"], result.candidate_images, strict=False):
                cand["image"] = _data_url(image)
            first = result.prompts[0][0]
            out["search_url"] = f"#/search?q={_quote(first)}&source=generated"
            state, error = "done", None
        except GenerationCancelled:
            out, state, error = None, "cancelled", None
        except ClipsearchError as exc:
            out, state = None, "failed"
            web = _field_error(exc)
            error = {**web.payload(), "code": "generate_failed"}
        except Exception as exc:  # never a stack trace in a response; the log has it
            import logging

            logging.getLogger("clipsearch.server").exception("generation job %s failed", job.id)
            out, state = None, "failed"
            error = {
                "code": "internal",
                "message": f"generation failed: {type(exc).__name__}",
                "hint": "Details are in the server's log.",
            }
        with self.lock:
            job.result, job.state, job.error, job.finished_at = out, state, error, time.time()


def _data_url(image: Any) -> str:
    import base64

    buf = BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _field_error(exc: ClipsearchError) -> FieldError:
    """The library's error in the request's terms: the field at fault and a hint that names
    the page's controls, not the CLI's flags."""
    if isinstance(exc, PromptError):
        hint = exc.hint
        if not hint or "clipsearch generate" in hint or _CLI_WORDS.search(hint):
            hint = 'Write what to draw under Prompts, e.g. "a red circle on a white background".'
        return FieldError("prompts", exc.message, hint)
    if isinstance(exc, VQGANError):
        return FieldError("drawer", exc.message, PIXELS_HINT)
    hint = None if exc.hint and _CLI_WORDS.search(exc.hint) else exc.hint
    return FieldError(None, exc.message, hint)


def _vqgan_factor(library: Any) -> int:
    """The downsampling factor of the VQGAN a page generation uses; FieldError if there is
    none (the request names no paths: only the VQGAN clipsearch ships for tiny-shapes)."""
    from clipsearch.generate.run import default_vqgan
    from clipsearch.generate.vqgan import find_checkpoint, read_config

    try:
        vqgan = default_vqgan(library.model)
    except VQGANError:
        raise FieldError(
            "drawer",
            f"the VQGAN drawer has no VQGAN for this library's model ({library.model}): "
            "clipsearch ships one only for the tiny-shapes model",
            f"{PIXELS_HINT} (To draw with a VQGAN you downloaded, generate on the command "
            "line: see docs/generate.md.)",
        ) from None
    return read_config(find_checkpoint(vqgan)[1]).factor


def _transformer_note(library: Any) -> str | None:
    """Why the transformer drawers cannot run for this library (None: they can)."""
    from clipsearch.generate.run import default_transformer
    from clipsearch.generate.transformer import find_transformer

    try:
        find_transformer(default_transformer(library.model))
    except ClipsearchError as exc:
        return exc.message
    return None


def options(library: Any) -> dict[str, Any]:
    """The drawers a page generation can use with this library, and the default."""
    try:
        _vqgan_factor(library)
        vqgan_note, vqgan_ok = None, True
    except (FieldError, ClipsearchError) as exc:  # none for the model; or missing, damaged
        vqgan_note, vqgan_ok = exc.message, False
    drawers = [
        {"name": "vqgan", "label": "VQGAN", "available": vqgan_ok, "note": vqgan_note},
        {"name": "pixel", "label": "Pixels", "available": True, "note": None},
    ]
    if vqgan_ok and _transformer_note(library) is None:  # listed only when they can run
        drawers += [
            {"name": "transformer", "label": "Transformer", "available": True, "note": None},
            {
                "name": "transformer+vqgan",
                "label": "Transformer + VQGAN",
                "available": True,
                "note": None,
            },
        ]
    return {"drawers": drawers, "default_drawer": "vqgan" if vqgan_ok else "pixel"}


def _request(library: Any, body: GenerateBody) -> Any:
    """A checked GenerateRequest (bad prompts and sizes answer 400 before any job starts)."""
    from clipsearch.generate.run import GenerateRequest, check_request

    init = None
    if body.init_id is not None:
        row = library.store.get_rows([body.init_id]).get(body.init_id)
        if row is None:
            raise ApiError(404, "not_found", f"no image with id {body.init_id}")
        init = row.path
    size = None
    if body.width or body.height:
        size = (body.width or body.height, body.height or body.width)
    req = GenerateRequest(
        prompts=tuple(body.prompts),
        steps=body.steps,
        seed=body.seed,
        size=size,
        lr=body.lr,
        cutouts=body.cutouts,
        drawer=body.drawer,
        init_image=init,
        preview=body.preview_every,
        candidates=body.candidates,
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p,
    )
    try:
        check_request(req)  # the prompts first
        if body.drawer == "vqgan":  # the VQGAN and the size: say so now, not after a start
            _check_size(library, size)
        elif body.drawer != "pixel":
            _vqgan_factor(library)
            note = _transformer_note(library)
            if note is not None:
                raise FieldError("drawer", note, PIXELS_HINT)
    except ClipsearchError as exc:
        raise _field_error(exc) from None
    return req


def _check_size(library: Any, size: tuple[int, int] | None) -> None:
    factor = _vqgan_factor(library)
    if size is not None and (size[0] % factor or size[1] % factor):
        w, h = (max(factor, round(n / factor) * factor) for n in size)
        raise FieldError(
            "size",
            f"the VQGAN drawer cannot make {size[0]}x{size[1]} pictures: width and height "
            f"must be multiples of {factor}",
            f"Try {w}x{h} under Size, or choose “Pixels” under Drawer (any size).",
        )


def _jobs(request: Request) -> Jobs:
    state = request.app.state
    if getattr(state, "generate_jobs", None) is None:
        state.generate_jobs = Jobs()
    return state.generate_jobs


@router.post("", response_model=Job, status_code=202, responses=_ERRORS)
def start(body: GenerateBody, ctx: Ctx, request: Request) -> Any:
    """Start generating; answers at once with the job (poll it with GET).

    A request that cannot run is a 400 whose error names the `field` at fault (`prompts`,
    `size`, `drawer`)."""
    jobs = _jobs(request)
    try:
        job = jobs.start(ctx.library, body)
    except FieldError as exc:
        return exc.response()
    with jobs.lock:
        return job.to_dict()


@router.get("/options", response_model=GenerateOptions)
def get_options(ctx: Ctx) -> dict:
    """The drawers this library can use (the VQGAN one needs a VQGAN for its model)."""
    return options(ctx.library)


@router.get("", response_model=list[Job])
def list_jobs(request: Request) -> list[dict]:
    """Recent jobs, newest first (the running one, if any, among them)."""
    jobs = _jobs(request)
    with jobs.lock:
        return [j.to_dict() for j in reversed(jobs.jobs.values())]


@router.get("/{job_id}", response_model=Job, responses=_ERRORS)
def get_job(job_id: JobId, request: Request) -> dict:
    """The job's progress: step, loss, latest preview; its result when done."""
    jobs = _jobs(request)
    with jobs.lock:
        return jobs.get(job_id).to_dict()


@router.get("/{job_id}/preview", response_class=Response, responses=_ERRORS)
def preview(job_id: JobId, request: Request) -> Response:
    """The latest frame of the job as a PNG."""
    jobs = _jobs(request)
    with jobs.lock:
        data = jobs.get(job_id).preview
    if data is None:
        raise ApiError(404, "not_found", "no preview yet")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.delete("/{job_id}", response_model=Job, responses=_ERRORS)
def cancel(job_id: JobId, request: Request) -> dict:
    """Cancel a running job (nothing is saved); a finished job is left as it is."""
    jobs = _jobs(request)
    with jobs.lock:
        job = jobs.get(job_id)
        if job.state == "running":
            job.cancel.set()
        return job.to_dict()


FEATURE = Feature("generate", "Generate", router, page="generate")
