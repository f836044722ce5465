"""``detect``, ``convert``, ``models`` and ``feedback``: detection runs, exports and the model store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from wildspace.cli.common import (
    BACKEND_HELP,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_THRESHOLD,
    PRECISION_HELP,
    CliError,
    batch_size_arg,
    fraction_arg,
    positive_arg,
    positive_float_arg,
)


def add_parsers(sub) -> None:
    d = sub.add_parser("detect", help="detect animals, people and vehicles; write MegaDetector JSON")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--model", help=f"model name from `models list` (default {DEFAULT_MODEL})")
    src.add_argument("--weights", type=Path, help="any local detector checkpoint (.pt)")
    d.add_argument("--image-size", type=positive_arg, help="inference size in px (default: the model's)")
    d.add_argument("--threshold", type=fraction_arg, default=DEFAULT_OUTPUT_THRESHOLD,
                   help=f"drop detections below this confidence (default {DEFAULT_OUTPUT_THRESHOLD})")
    d.add_argument("--batch-size", type=batch_size_arg, default=None,
                   help="images per forward pass, or auto (default: 4 on CPU, from free memory on GPU)")
    d.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    d.add_argument("--backend", choices=["torch", "onnx", "auto"], help=BACKEND_HELP)
    d.add_argument("--precision", choices=["fp32", "bf16", "auto"], help=PRECISION_HELP)
    d.add_argument("--explain", action="store_true",
                   help="print (to stderr) which backend, precision and threads run, and why")
    d.add_argument("--fast-decode", action="store_true", default=None,
                   help="decode big JPEGs at reduced size (faster on CPU; detections can move slightly)")
    d.add_argument("--workers", type=positive_arg, default=2, help="decode threads")
    d.add_argument("--output", "-o", type=Path, required=True, help="results file (.json)")
    d.add_argument("--classifier", help="species classifier for animal boxes (a classify model "
                   "from `models list`); adds MegaDetector 'classifications'")
    d.add_argument("--classification-threshold", type=fraction_arg, default=None,
                   help="species confidence below which a box reads 'unknown' (default: the classifier's typical)")
    d.add_argument("--classify-above", type=fraction_arg, default=None,
                   help="only classify boxes with detection confidence >= this "
                        "(default: the detector's conservative threshold)")
    d.add_argument("--every-n-frames", type=positive_arg, default=None,
                   help="videos: analyse every Nth frame (as the app's Video tab)")
    d.add_argument("--every-seconds", type=positive_float_arg, default=None,
                   help="videos: analyse one frame every S seconds (default 1 when neither is given)")
    d.add_argument("paths", nargs="+", type=Path,
                   help="images, videos, folders (recursive), .txt lists or .zip archives (checked like "
                        "uploads); names are relative to the folder, or to the inputs' common parent")

    c = sub.add_parser("convert", help="turn a MegaDetector JSON into other formats")
    c.add_argument("results", type=Path, help="MegaDetector batch JSON (from wildspace or any tool)")
    c.add_argument("--to", dest="kinds", action="append",
                   choices=["csv", "coco", "camtrap-dp", "crops", "sorted", "all"],
                   help="output format (repeatable; default all that the inputs allow)")
    c.add_argument("--images", type=Path, help="folder the results' file paths are relative to "
                   "(needed for crops, sorted folders, EXIF times and image sizes)")
    c.add_argument("--threshold", type=fraction_arg, default=0.2,
                   help="confidence threshold for the exports (default 0.2)")
    c.add_argument("--deployments", type=Path, help="deployments CSV: deploymentID and optional folder or "
                   "filePattern, latitude, longitude, cameraID, locationName, deploymentStart, deploymentEnd, "
                   "utcOffset (default: one deployment per camera folder)")
    c.add_argument("--event-gap", type=float, default=60.0,
                   help="seconds between media that start a new event (default 60, as MegaDetector's sequences)")
    c.add_argument("--utc-offset", default="+00:00", help="the camera clocks' UTC offset, e.g. +02:00 "
                   "(default +00:00; a deployments CSV can set one per deployment)")
    c.add_argument("--time-from-filename", metavar="PATTERN", help="last resort for capture times: strptime "
                   "codes found in the file name, e.g. %%Y%%m%%d_%%H%%M%%S")
    c.add_argument("--day-first", action="store_true", help="caption bars print DD-MM-YYYY (default MM-DD-YYYY "
                   "when ambiguous)")
    c.add_argument("--no-ocr", action="store_true", help="do not read capture times from caption bars")
    c.add_argument("--missing-times", choices=["refuse", "leave-out"], default="refuse",
                   help="media with no capture time: refuse (list them, write nothing; default) or leave "
                        "them out of the Camtrap DP package (named in its description)")
    c.add_argument("--output", "-o", type=Path, required=True, help="output folder")

    m = sub.add_parser("models", help="list and import models")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="known models and whether their weights are on this machine")
    ml.add_argument("--json", action="store_true", help="machine-readable output")
    mi = msub.add_parser("import", help="import a weight file (air-gapped stations)")
    mi.add_argument("file", type=Path)
    mi.add_argument("--as", dest="name", required=True,
                    help="a known model name (hash verified) or a new name for custom weights")
    mi.add_argument("--task", choices=["detect", "classify"], default=None,
                    help="for new names: what the weights do (default detect; --labels implies classify)")
    mi.add_argument("--labels", type=Path, help="classifier class names: .txt (one per line) or .json list")
    mi.add_argument("--arch", help="classifier architecture: any timm name (e.g. convnext_tiny) or a "
                    "torchvision one (e.g. resnet50)")
    mi.add_argument("--family", choices=["timm", "torchvision"], default="timm", help="classifier family")
    mi.add_argument("--input-size", type=positive_arg, default=224, help="classifier input size in px")
    mi.add_argument("--kind", choices=["species", "products"], default="species",
                    help="species (crops of animal boxes) or products (Products tab)")

    f = sub.add_parser("feedback", help="feedback given on product answers")
    fsub = f.add_subparsers(dest="feedback_command", required=True)
    fe = fsub.add_parser("export", help="write the feedback as a Hugging Face datasets dataset")
    fe.add_argument("--output", "-o", type=Path, required=True, help="output folder (datasets.load_from_disk)")
    fe.add_argument("--model", help="only feedback on this model")
    fsub.add_parser("list", help="how much feedback there is, per model and verdict")


def cmd_detect(args: argparse.Namespace) -> int:
    import tempfile

    from wildspace.media.archives import VIDEO_EXTENSIONS, unpack_uploads
    from wildspace.media.images import IMAGE_EXTENSIONS
    from wildspace.media.inputs import InputError, expand_inputs
    from wildspace.types import ImageResult

    if args.output.suffix.lower() != ".json":
        raise CliError(f"--output must be a .json file, got {args.output}")
    zips = [p for p in args.paths if p.suffix.lower() == ".zip"]
    with tempfile.TemporaryDirectory(prefix="wildspace-zips-") as tmp:
        try:
            files = expand_inputs([p for p in args.paths if p not in zips], IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
        except InputError as exc:
            raise CliError(str(exc)) from None
        refused: list[ImageResult] = []
        if zips:  # members checked like app uploads (zip-slip, links, bombs), then deleted
            from wildspace.settings import load_settings

            extensions = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            unpacked = unpack_uploads(zips, Path(tmp), load_settings().limits.upload_limits(), extensions=extensions)
            files += unpacked.files
            refused = [ImageResult(name, None, failure=why) for name, why in unpacked.failures]
        from wildspace.formats.exports import DuplicateNamesError, check_unique_names

        try:
            check_unique_names([ImageResult(n, ()) for _, n in files] + refused)
        except DuplicateNamesError as exc:
            raise CliError(str(exc)) from None
        videos = [(p, n) for p, n in files if Path(n).suffix.lower() in VIDEO_EXTENSIONS]
        images = [(p, n) for p, n in files if Path(n).suffix.lower() not in VIDEO_EXTENSIONS]
        return _detect(args, images, refused, videos)


def _sampling(args: argparse.Namespace):
    from wildspace.media.video import Sampling

    if args.every_n_frames is not None and args.every_seconds is not None:
        raise CliError("give --every-n-frames or --every-seconds, not both")
    if args.every_n_frames is not None:
        return Sampling(every_n_frames=args.every_n_frames)
    return Sampling(every_seconds=args.every_seconds or 1.0)


def _detect(args: argparse.Namespace, files: list, refused: list, videos: Sequence = ()) -> int:
    from wildspace.detect.pipeline import detect_files
    from wildspace.formats.megadetector import ResultsSpool, build_results, detector_metadata
    from wildspace.services.detectors import DetectorService

    sampling = _sampling(args) if videos else None
    service = DetectorService(device=args.device, backend=args.backend, precision=args.precision)
    if args.weights is not None:
        detector = service.load(weights=args.weights, image_size=args.image_size)
    else:
        detector = service.load(name=args.model or DEFAULT_MODEL, image_size=args.image_size)
    info = detector.info
    if args.explain:
        from wildspace.detect.explain import explain

        print("\n".join(explain(detector, service.backend, service.precision)), file=sys.stderr, flush=True)
    species = _species_step(service, args, info) if args.classifier else None
    from tqdm import tqdm

    bar = tqdm(total=len(files) + len(videos), unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)
    # results go to a spool on disk as they come: memory stays flat however long the run
    spool = ResultsSpool(info.labels, species.md_fields().get("classification_categories") if species else None)
    try:
        for r in refused:
            spool.add(r)
        fast = service.settings.fast_decode if args.fast_decode is None else args.fast_decode
        stream = detect_files(detector, files, args.threshold, batch_size=args.batch_size,
                              workers=args.workers, max_pixels=service.settings.max_pixels,
                              fast_decode=fast)
        if species is not None:
            stream = species.on_results(stream, {name: path for path, name in files}, info.labels,
                                        service.settings.max_pixels)
        for r in stream:
            spool.add(r)
            bar.update(1)
        if videos and sampling is not None:
            from wildspace.detect.video import detect_video

            limits = service.settings.limits
            for path, name in videos:
                spool.add(detect_video(detector, path, name, args.threshold, sampling,
                                       batch_size=max(args.batch_size or 0, 8), species=species,
                                       max_seconds=limits.max_video_seconds, max_pixels=limits.max_pixels))
                bar.update(1)
        bar.close()
        header = build_results([], info.labels, info.extra.get("file", info.name),
                               detector_metadata(info, args.threshold), **(species.md_fields() if species else {}))
        spool.write(header, args.output)
    finally:
        spool.close()
    what = f"{len(spool) - len(videos)} images" + (f", {len(videos)} videos" if videos else "")
    print(f"{what}, {spool.detections} detections, {spool.failed} failed -> {args.output}", file=sys.stderr)
    return 0


def _species_step(service, args: argparse.Namespace, info):
    from wildspace.classify.species import SpeciesOptions, SpeciesStep
    from wildspace.services.classifiers import ClassifierService

    classifiers = ClassifierService.sharing(service)
    if args.classifier not in classifiers.names("species"):
        known = ", ".join(classifiers.names("species")) or "none (see README: Classification)"
        raise CliError(f"unknown species classifier '{args.classifier}'; known: {known}")
    clf = classifiers.load(args.classifier)
    threshold = args.classification_threshold
    above = args.classify_above
    return SpeciesStep(clf, SpeciesOptions(
        threshold=clf.info.typical_threshold if threshold is None else threshold,
        min_detection_conf=info.conservative_threshold if above is None else above,
        batch_size=max(args.batch_size or 0, 8)))  # --batch-size may be 'auto' (None)


def cmd_convert(args: argparse.Namespace) -> int:
    from wildspace.formats.camtrap_dp import PackageOptions
    from wildspace.formats.events import DeploymentsError, parse_event_gap, parse_offset, read_deployments_csv
    from wildspace.formats.exports import EXPORT_KINDS, NEEDS_IMAGES, result_set_from_md, write_exports
    from wildspace.formats.megadetector import read_results
    from wildspace.formats.timestamps import TimeOptions, pattern_regex

    if args.images is not None and not args.images.is_dir():
        raise CliError(f"--images must be a folder: {args.images.name}")
    try:
        parse_event_gap(args.event_gap)
        parse_offset(args.utc_offset)
        deployments = tuple(read_deployments_csv(args.deployments)) if args.deployments else ()
        if args.time_from_filename:
            pattern_regex(args.time_from_filename)
    except (DeploymentsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    rs = result_set_from_md(read_results(args.results), args.images)
    kinds = [k for k in (args.kinds or ["all"]) if k != "all"]
    if not kinds:
        kinds = [k for k in EXPORT_KINDS if k != "md-json" and (args.images or k not in NEEDS_IMAGES)]
        if not args.images and not args.time_from_filename and "camtrap-dp" in kinds:
            kinds.remove("camtrap-dp")  # no capture time can be known: say so instead of refusing
            print("camtrap-dp: left out (capture times need --images or --time-from-filename)", file=sys.stderr)
    package = PackageOptions(utc_offset=args.utc_offset, deployments=deployments, event_gap=args.event_gap,
                             missing_times=args.missing_times,
                             times=TimeOptions(ocr=not args.no_ocr, day_first=args.day_first,
                                               filename_pattern=args.time_from_filename))
    paths = write_exports(rs, args.output, args.threshold, kinds, name=args.results.stem, package=package)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from wildspace.services.detectors import DetectorService

    service = DetectorService()
    if args.models_command == "list":
        rows = service.listing()
        if args.json:
            print(json.dumps([r.__dict__ for r in rows], indent=1))
            return 0
        width = max((len(r.name) for r in rows), default=4)
        print(f"{'name':<{width}}  {'task':<8} {'family':<14} {'on disk':<8} licence")
        for r in rows:
            print(f"{r.name:<{width}}  {r.task:<8} {r.family:<14} {'yes' if r.cached else 'no':<8} {r.license}")
        return 0
    task = args.task or ("classify" if args.labels or args.arch else "detect")
    if task == "classify" and args.name not in service.registry:
        spec = _import_classifier(service, args)
    else:
        spec = service.import_model(args.file, args.name)
    classes = (f", {len(spec.labels)} classes: {', '.join(spec.labels[:5])}"
               f"{' …' if len(spec.labels) > 5 else ''}") if spec.labels else ""
    print(f"imported {args.file} as '{spec.name}' ({spec.task}, {spec.family}{classes})")
    return 0


def _import_classifier(service, args: argparse.Namespace):
    from wildspace.services.classifiers import ClassifierService, read_labels

    if not args.labels or not args.arch:
        raise CliError("a new classifier needs --labels FILE and --arch NAME (e.g. --arch resnet50 "
                       "--family torchvision, or any timm name)")
    return ClassifierService.sharing(service).import_classifier(
        args.file, args.name, read_labels(args.labels), args.arch, family=args.family,
        input_size=args.input_size, kind=args.kind)


def cmd_feedback(args: argparse.Namespace) -> int:
    from wildspace.classify.feedback import FeedbackStore
    from wildspace.classify.products import PRODUCT_LABELS
    from wildspace.settings import load_settings

    store = FeedbackStore(load_settings().home / "feedback")
    if args.feedback_command == "list":
        counts: dict[tuple[str, str], int] = {}
        for r in store.records():
            counts[(r.model, r.verdict)] = counts.get((r.model, r.verdict), 0) + 1
        for (model, verdict), n in sorted(counts.items()):
            print(f"{model}\t{verdict}\t{n}")
        print(f"{len(store)} answers judged", file=sys.stderr)
        return 0
    records = store.records(model=args.model)
    names = PRODUCT_LABELS if all(r.label in (None, *PRODUCT_LABELS) for r in records) else None
    out = store.export_dataset(args.output, names, model=args.model)
    print(f"{len(records)} feedback rows -> {out} (load with datasets.load_from_disk)")
    return 0


COMMANDS = {"detect": cmd_detect, "convert": cmd_convert, "models": cmd_models, "feedback": cmd_feedback}
