"""``sama data synth`` and ``sama data preview``: register both on the ``data`` group's sub-parsers."""

from __future__ import annotations

import argparse

from sama.errors import ConfigError


def _synth(args: argparse.Namespace) -> int:
    from sama.data.synthetic.scene import SceneConfig
    from sama.data.synthetic.writer import generate_dataset

    height, width = args.size
    config = SceneConfig(height=height, width=width, num_frames=args.frames)
    summary = generate_dataset(
        args.out, args.videos, args.seed, config=config, mp4=args.mp4, overwrite=args.overwrite, progress=not args.quiet
    )
    per_split = ", ".join(f"{split} {count}" for split, count in summary.videos.items())
    questions, attributes = sum(summary.questions.values()), sum(summary.attribute_questions.values())
    print(f"wrote {summary.out_dir}: videos {per_split}; {questions} chat questions and {attributes} attribute "
          f"questions; {summary.objects} objects")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from sama.data.synthetic.preview import write_preview

    if args.fps <= 0:
        raise ConfigError(f"--fps must be positive, got {args.fps}")
    gif, png = write_preview(args.dir, args.video, args.out, fps=args.fps)
    print(f"wrote {gif}\nwrote {png}")
    return 0


def register_synth(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``preview`` to the ``sama data`` sub-command group."""
    synth = subparsers.add_parser("synth", help="write a synthetic referential-video dataset (official formats)")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--videos", type=int, required=True, help="number of videos (split 80/10/10 train/val/bench)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed → identical files)")
    synth.add_argument("--size", type=int, nargs=2, default=(96, 96), metavar=("H", "W"), help="frame size")
    synth.add_argument("--frames", type=int, default=24, help="frames per video")
    synth.add_argument("--mp4", action="store_true", help="also write videos/<video_id>.mp4")
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_synth)

    preview = subparsers.add_parser("preview", help="GIF + PNG of a synthetic video with mask overlays and tags")
    preview.add_argument("dir", help="dataset folder written by `sama data synth`")
    preview.add_argument("--video", default=None, help="video id (default: the first video)")
    preview.add_argument("--out", default=None, help="output folder (default: DIR/preview)")
    preview.add_argument("--fps", type=float, default=6.0, help="GIF frame rate")
    preview.set_defaults(func=_preview)
