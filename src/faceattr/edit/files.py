"""`faceattr edit` on files: where each result goes (`output_paths`) and the edit of many photos with a
report per photo (`edit_files`)."""

import json
import os
from pathlib import Path

from PIL import Image

from faceattr.data.images import load_photo
from faceattr.edit.pipeline import Editor, Result
from faceattr.errors import FaceattrError
from faceattr.fileio import save_image, write_text


WRITABLE = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def output_paths(inputs, output=None, out_dir=None) -> list[Path]:
    """Where each input's edited photo goes: `output` (one input only) or out_dir/<input's name>
    (formats Pillow cannot write become .png). Refuses to overwrite an input or to write two
    inputs to one file."""
    inputs = [Path(p) for p in inputs]
    if (output is None) == (out_dir is None):
        raise FaceattrError("give either -o FILE (one input) or --out-dir DIR")
    if output is not None:
        if len(inputs) != 1:
            raise FaceattrError(f"-o takes one input, got {len(inputs)}: use --out-dir for several")
        outs = [Path(output)]
    else:
        outs = [Path(out_dir) / (p.name if p.suffix.lower() in WRITABLE else p.stem + ".png") for p in inputs]
    for src, dst in zip(inputs, outs):
        if dst.suffix.lower() not in WRITABLE:
            raise FaceattrError(f"{dst}: cannot write {dst.suffix or 'files without an extension'}; "
                                f"use one of {', '.join(sorted(WRITABLE))}")
        if dst.resolve() == src.resolve():
            raise FaceattrError(f"{dst}: would overwrite the input; choose another output")
    for dst in outs:  # found before the edit, not after it
        folder = next(p for p in [dst.parent, *dst.parent.parents] if p.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise FaceattrError(f"{dst}: cannot write there ({folder} is not a writable folder)")
    seen = {}
    for src, dst in zip(inputs, outs):
        if dst.resolve() in seen:
            raise FaceattrError(f"{seen[dst.resolve()]} and {src} would both be written to {dst}")
        seen[dst.resolve()] = src
    return outs


def _summary(result: Result, edits: dict) -> str:
    parts = [f"{a} {f['s'][a]['photo']:.2f}->{f['s'][a]['result']:.2f}" for f in result.faces for a in edits]
    return f"{len(result.faces)} face(s) edited; s (photo->result): {', '.join(parts)}"


def edit_files(editor: Editor, inputs, outputs, edits: dict, debug: bool = False, report: bool = False,
               batch: int = 8, log=print) -> list[str]:
    """Edit every input photo into its output, `batch` photos (all their faces) per Editor.edit (its options).

    Goes on past a photo that fails (unreadable, no face) and returns the failures, one
    "path: reason" line each. Every file is written atomically: the edited photo, with `report` its
    JSON report beside it (<output>.json), with `debug` its strip (<output>.debug.png).
    """
    editor.goals(edits)  # a bad attribute fails the whole job before any photo is read
    if batch < 1:
        raise FaceattrError("--batch must be at least 1")
    failures = []
    pairs = list(zip(map(Path, inputs), map(Path, outputs)))
    for start in range(0, len(pairs), batch):
        loaded = []
        for src, dst in pairs[start:start + batch]:
            try:
                loaded.append((src, dst, load_photo(src)))
            except FaceattrError as e:  # its message starts with the path
                failures.append(str(e))
        if not loaded:
            continue
        results = editor.edit([p for _, _, p in loaded], edits, debug=debug)
        for (src, dst, _), result in zip(loaded, results):
            if result.error:
                failures.append(f"{src}: {result.error}")
                continue
            try:
                save_image(Image.fromarray(result.image), dst, quality=95)
                if report:
                    write_text(dst.with_name(dst.name + ".json"),
                               json.dumps({"input": str(src), "output": str(dst), **result.report}, indent=2))
                if debug:
                    save_image(Image.fromarray(result.debug), dst.with_name(dst.name + ".debug.png"))
            except OSError as e:
                failures.append(f"{src}: cannot write {dst} ({e.strerror or e})")
                continue
            log(f"{src} -> {dst}: {_summary(result, edits)}")
    return failures
