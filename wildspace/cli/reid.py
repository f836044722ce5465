"""``python -m wildspace gallery …`` and ``python -m wildspace reid evaluate``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from wildspace.cli.common import CliError


def add_parsers(sub) -> None:
    g = sub.add_parser("gallery", help="individual-ID galleries: build, look up, enrol, pull, push")
    gsub = g.add_subparsers(dest="gallery_command", required=True)
    gb = gsub.add_parser("build", help="build a gallery from a folder of images and a CSV")
    gb.add_argument("--images", type=Path, required=True, help="folder the CSV's files are in")
    gb.add_argument("--identities", type=Path, required=True,
                    help="CSV: file, identity[, viewpoint, bbox, date, location]")
    gb.add_argument("--out", required=True,
                    help="gallery folder, or a plain name for the app's galleries")
    gb.add_argument("--model", help="embedder model name (default: weight-free matching only)")
    _crop_arguments(gb)
    gb.add_argument("--no-local", action="store_true",
                    help="skip local features (only with --model)")
    gi = gsub.add_parser("info", help="size, identities, methods and thresholds")
    gi.add_argument("gallery")
    gl = gsub.add_parser("lookup", help="who is this animal?")
    gl.add_argument("gallery")
    gl.add_argument("image", type=Path)
    gl.add_argument("--viewpoint", default="", help="left or right flank, if known")
    _crop_arguments(gl)
    gl.add_argument("--method", choices=["local", "embed", "fused"])
    gl.add_argument("--top", type=int, default=5)
    gl.add_argument("--json", action="store_true")
    ge = gsub.add_parser("enrol", help="add an image of a (new or known) animal")
    ge.add_argument("gallery")
    ge.add_argument("image", type=Path)
    ge.add_argument("--identity", required=True)
    ge.add_argument("--viewpoint", default="")
    _crop_arguments(ge)
    gp = gsub.add_parser("pull", help="copy a gallery dataset repo from the Hub (pinned)")
    gp.add_argument("repo_id")
    gp.add_argument("--revision", required=True, help="40-hex commit")
    gp.add_argument("--name", required=True, help="local gallery name")
    gu = gsub.add_parser("push", help="upload a gallery to a Hub dataset repo (needs HF_TOKEN)")
    gu.add_argument("gallery")
    gu.add_argument("--repo", required=True)

    r = sub.add_parser("reid", help="evaluate individual re-identification")
    rsub = r.add_subparsers(dest="reid_command", required=True)
    re_ = rsub.add_parser("evaluate", help="leave-one-out evaluation on a labelled folder")
    re_.add_argument("--images", type=Path, required=True)
    re_.add_argument("--identities", type=Path, required=True)
    re_.add_argument("--method", choices=["local", "embed", "fused", "lightglue"], default="local",
                     help="local: weight-free RootSIFT; embed/fused: an embedder (--model); "
                     "lightglue: learned ALIKED keypoints matched by LightGlue (models aliked-n16 "
                     "and lightglue-aliked, fetched or imported like any model)")
    re_.add_argument("--model", help="embedder model name (needed for embed and fused)")
    _crop_arguments(re_)
    re_.add_argument("--learned-side", type=int, default=1024,
                     help="lightglue: long side in px each image is resized to (default 1024)")
    re_.add_argument("--learned-keypoints", type=int, default=1024,
                     help="lightglue: strongest ALIKED keypoints kept per image (default 1024)")
    re_.add_argument("--leave-out", choices=["encounter", "image"], default="encounter",
                     help="what each query leaves out of the gallery: its whole encounter (same "
                     "station within --event-gap; the default, used when the CSV has station and "
                     "date columns) or only itself")
    re_.add_argument("--event-gap", type=float, default=30.0,
                     help="minutes without a photo that end an encounter (default 30)")
    re_.add_argument("--group-by", help="CSV column(s), comma separated, whose images are left "
                     "out together instead of encounters (e.g. station,date)")
    re_.add_argument("--pooling", choices=["max", "events", "keypoints", "lnbnn"], default=None,
                     help="identity score from its images: the best one, the sum of its two best "
                     "encounters, every query keypoint once per identity, or HotSpotter's LNBNN "
                     "scoring against the whole gallery at once (local only) (default: max)")
    re_.add_argument("--unknown", help="identities (comma separated) kept out of the gallery: "
                     "an open-set test (they should be called new, the others found)")
    re_.add_argument("--report", type=Path, help="folder for report.json, report.md and the "
                     "reliability plot")
    re_.add_argument("--calibration", choices=["logistic", "isotonic"], default="logistic")
    re_.add_argument("--json", action="store_true", help="print JSON (default: a short table)")


def _crop_arguments(p) -> None:
    p.add_argument("--crop-with", help="detector model that crops the animal from whole frames first")
    p.add_argument("--crop-threshold", type=float, default=0.2,
                   help="crop to the most confident animal box at or above this confidence, else use "
                        "the whole frame (default 0.2)")


def _service(args):
    from wildspace.services.galleries import GalleryService

    detectors = None
    if getattr(args, "crop_with", None):
        from wildspace.services.detectors import DetectorService

        detectors = DetectorService()
    # a command is one process: it recalibrates before it saves (no background thread)
    return GalleryService(detectors=detectors, crop_threshold=getattr(args, "crop_threshold", 0.2),
                          background_calibration=False)


def _load_rgb(path: Path, settings):
    from wildspace.media.images import ImageReadError, load_image

    try:
        return load_image(path, max_pixels=settings.max_pixels)
    except ImageReadError as exc:
        raise CliError(f"{path}: {exc}") from None


def cmd_gallery(args: argparse.Namespace) -> int:
    from wildspace.reid.gallery import push_gallery
    from wildspace.reid.matching import available_methods

    svc = _service(args)
    c = args.gallery_command
    if c == "build":
        if args.no_local and not args.model:
            raise CliError("--no-local needs --model (a gallery needs something to match with)")
        root, gallery, failures = svc.build(args.out, args.images, args.identities, args.model,
                                            args.crop_with, local=not args.no_local)
        for f, why in failures:
            print(f"failed: {f}: {why}", file=sys.stderr)
        print(f"gallery {root}: {len(gallery)} images of {len(set(gallery.identities))} animals, "
              f"methods {', '.join(available_methods(gallery))}, {len(failures)} failed")
        return 0
    if c == "info":
        g = svc.open(args.gallery)
        info = {"name": g.name, "images": len(g), "identities": len(set(g.identities.tolist())),
                "embedder": g.embedder, "methods": available_methods(g),
                "thresholds": {m: c_["threshold"] for m, c_ in g.calibrations.items()}}
        print(json.dumps(info, indent=2))
        return 0
    if c in ("lookup", "enrol"):
        rgb = _load_rgb(args.image, svc.settings)
        if c == "enrol":
            from wildspace.reid.build import prepare_query

            crop, bbox = prepare_query(rgb, None, svc.crop_fn(args.crop_with))
            g = svc.enrol(args.gallery, crop, args.identity, args.viewpoint, bbox, create=True)
            print(f"enrolled {args.identity}: gallery now {len(g)} images")
            return 0
        ans = svc.lookup(args.gallery, rgb, args.viewpoint, args.crop_with, args.method, args.top)
        r = ans.result
        doc = {"verdict": r.verdict, "identity": r.identity, "probability": r.probability,
               "method": r.method, "threshold": r.threshold, "bbox": ans.bbox,
               "matches": [{"identity": m.identity, "score": m.score, "probability": m.probability,
                            "viewpoint": m.viewpoint} for m in r.matches]}
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            print(f"{r.verdict}: {r.identity or 'new animal'} (p={r.probability:.2f})")
            for m in r.matches:
                print(f"  {m.identity:20s} score {m.score:8.3f}  p {m.probability:.2f}")
        return 0
    if c == "pull":
        svc.pull(args.name, args.repo_id, args.revision)
        print(f"pulled {args.repo_id}@{args.revision[:8]} into gallery '{args.name}'")
        return 0
    if c == "push":
        oid = push_gallery(svc.path(args.gallery), args.repo, os.environ.get("HF_TOKEN"))
        print(f"pushed to {args.repo}: {oid}")
        return 0
    raise CliError(f"unknown gallery command {c}")


def cmd_reid(args: argparse.Namespace) -> int:
    from wildspace.reid.build import build_gallery, read_identity_table
    from wildspace.reid.evaluate import group_labels, leave_one_out, open_set_split
    from wildspace.reid.events import gallery_encounters
    from wildspace.reid.matching import DEFAULT_POOLING

    if args.method in ("embed", "fused") and not args.model:
        raise CliError(f"--method {args.method} needs --model (an embedder)")
    if args.event_gap < 0:
        raise CliError("--event-gap must be >= 0 minutes")
    if args.method == "lightglue" and args.pooling in ("keypoints", "lnbnn"):
        raise CliError(f"--pooling {args.pooling} needs --method local (lightglue pools max or events)")
    svc = _service(args)
    rows = read_identity_table(args.identities)
    emb = svc.embedder(args.model) if args.model else None
    learned = None
    if args.method == "lightglue":
        from wildspace.reid.learned import LearnedConfig, load_learned_matcher

        if args.learned_side < 64 or args.learned_keypoints < 16:
            raise CliError("--learned-side must be >= 64 px and --learned-keypoints >= 16")
        learned = load_learned_matcher(svc.settings, LearnedConfig(
            max_side=args.learned_side, keypoints=args.learned_keypoints))
    gallery, failures = build_gallery(args.images, rows, "evaluation", embedder=emb,
                                      crop_fn=svc.crop_fn(args.crop_with),
                                      local=args.method in ("local", "fused"),
                                      max_pixels=svc.settings.max_pixels, learned=learned)
    pooling = args.pooling or DEFAULT_POOLING
    groups: list[str] | None
    if args.group_by:
        try:
            groups = group_labels(gallery.records, [c.strip() for c in args.group_by.split(",")],
                                  args.identities)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        left_out = f"left out: the query and every image with its {args.group_by}"
    elif args.leave_out == "encounter":
        groups, left_out = gallery_encounters(gallery, args.event_gap)
    else:
        groups, left_out = None, "left out: the query image only (--leave-out image)"
    scores = None
    if learned is not None:
        scores = _learned_scores(learned, gallery, groups)
    out = leave_one_out(gallery, args.method, groups, args.calibration, pooling, left_out,
                        scores=scores)
    if args.unknown:
        try:
            out["open_set"] = open_set_split(gallery, [u.strip() for u in args.unknown.split(",")],
                                             args.method, groups, pooling, scores=scores)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    out["failures"] = [{"file": f, "reason": why} for f, why in failures]
    out["model"] = args.model
    if args.report:
        from wildspace.reid.report import write_reid_report

        out["report"] = {k: str(v) for k, v in write_reid_report(args.report, out).items()}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        width = shutil.get_terminal_size((80, 20)).columns
        print(f"{out['images']} images, {out['identities']} animals, method {out['method']}, "
              f"pooling {out['pooling']}"[:width])
        print(f"  {out['left_out']}"[:width])
        for key in ("top1", "top5", "mAP", "baks", "baus", "threshold", "brier_top"):
            v = out[key]
            print(f"  {key:10s} {'-' if v is None else f'{v:.3f}'}")
        for k, v in out["map_at_k"].items():
            print(f"  MAP@{k:6s} {'-' if v is None else f'{v:.3f}'}")
        if "open_set" in out:
            o = out["open_set"]
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"  open set: {fmt(o['new_rate'])} of {o['unknown_queries']} unknown queries "
                  f"called new; {fmt(o['known_found'])} of {o['known_queries']} known ones found")
    return 0


def _learned_scores(learned, gallery, groups):
    """Every pair the evaluations can use (not self, not one encounter, not opposite flanks),
    matched once, with a progress line on stderr."""
    from wildspace.reid.evaluate import exclusion_mask

    stations = [r.location for r in gallery.records]

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"\rlightglue: {done}/{total} pairs", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    return learned.score_matrix(gallery.learned, gallery.learned, exclusion_mask(gallery, groups),
                                stations, stations, symmetric=True, progress=progress)


COMMANDS = {"gallery": cmd_gallery, "reid": cmd_reid}
