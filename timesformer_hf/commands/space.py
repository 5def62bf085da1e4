"""`timesformer-hf space MODEL OUT_DIR`: a Hugging Face Space (Gradio) that serves the web app of a model."""

from __future__ import annotations

import argparse

from .errors import CLIError

HELP = "Write a Hugging Face Space that serves a model's web app (and upload it with --push)."


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help=HELP, description=HELP)
    parser.add_argument(
        "model", help="The model's Hub id (loaded by id), or a local repo with --include-model."
    )
    parser.add_argument("output_dir", metavar="OUT_DIR", help="The Space folder to write.")
    parser.add_argument("--examples", metavar="DIR", help="A folder of videos to offer as examples (copied).")
    parser.add_argument(
        "--include-model", action="store_true", help="Copy a local model repo into the Space (as model/)."
    )
    parser.add_argument(
        "--requirement",
        metavar="SPEC",
        help="How the Space installs this package (default: timesformer-hf[app]==VERSION), e.g. a git+https URL.",
    )
    parser.add_argument("--title", help="The Space's title (default: TimeSformer and the model's name).")
    parser.add_argument(
        "--push", metavar="SPACE_ID", help="Upload the Space to the Hub, e.g. me/motion-demo."
    )
    parser.add_argument("--private", action="store_true", help="With --push: a private Space.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing Space folder.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..hub import check_hub_access, push_repo
    from ..space import write_space

    if args.private and not args.push:
        raise CLIError("--private is for --push SPACE_ID: add it, or drop --private.")
    if args.push:  # before any work: the Hub and the login
        check_hub_access(f"pushing to {args.push}")
    folder = write_space(
        args.model,
        args.output_dir,
        examples=args.examples,
        include_model=args.include_model,
        requirement=args.requirement,
        title=args.title,
        overwrite=args.overwrite,
    )
    print(f"Wrote the Space {folder} (python {folder}/app.py serves it here)")
    if args.push:
        commit = push_repo(
            folder,
            args.push,
            private=args.private,
            commit_message="Add the TimeSformer app",
            repo_type="space",
        )
        print(f"Pushed to https://huggingface.co/spaces/{args.push} ({commit.commit_url})")
