"""What `classify`, `features` and `evaluate` share: the video list, the processes, the engine, the result store."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import CLIError, SomeInputsFailed
from .options import default_num_workers


def video_paths(sources: Sequence[str]) -> list[str]:
    """Files as given, folders searched recursively for videos (sorted)."""
    from ..data import VIDEO_EXTENSIONS

    paths = []
    if empty := [source for source in sources if not source.strip()]:
        raise CLIError(
            f"An empty video path was given ({len(empty)}x ''): name the files or folders of the videos."
        )
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(
                p for p in source.rglob("*") if p.is_file() and p.name.lower().endswith(VIDEO_EXTENSIONS)
            )
            paths += map(str, found)
        else:
            paths.append(str(source))
    if not paths:
        raise CLIError(f"No videos ({', '.join(VIDEO_EXTENSIONS)}) found in {', '.join(sources)}.")
    return paths


def video_source(args: argparse.Namespace, files: str | Sequence[str] | None) -> Any:
    """The `timesformer_hf.data.VideoSource` of `--dataset-name`, or of `files` (a folder or a list file),
    whichever of the two was given."""
    from ..data import VideoSource

    if files and args.dataset_name:
        raise CLIError("Give the videos as files or folders, or as a data set with --dataset-name, not both.")
    if not (files or args.dataset_name):
        raise CLIError("Give the videos: files or folders, or a data set with --dataset-name.")
    columns = {
        "video_column_name": args.video_column_name,
        "label_column_name": getattr(args, "label_column_name", None),
    }
    if args.dataset_name:
        return VideoSource.from_datasets(args.dataset_name, config_name=args.dataset_config_name, **columns)
    return VideoSource.from_path(files, **columns)


LOCAL_SIZE_VARIABLES = (
    "LOCAL_WORLD_SIZE",
    "MPI_LOCALNRANKS",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MV2_COMM_WORLD_LOCAL_SIZE",
)


class Processes:
    """This process's rank among those `accelerate launch` / `torchrun` started (one process otherwise)."""

    def __init__(self) -> None:
        self.state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # processes on CPUs: gloo; ranks with short shares wait at the end for the others, for hours if need be
            self.state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(days=7))
        self.rank = self.state.process_index if self.state else 0
        self.count = self.state.num_processes if self.state else 1
        self.is_main = self.rank == 0
        # processes on this machine: torchrun's and `accelerate launch`'s variable, else MPI's (`accelerate --cpu`)
        local = next((os.environ[name] for name in LOCAL_SIZE_VARIABLES if os.environ.get(name)), "1")
        self.local_count = max(1, int(local)) if self.state else 1

    def device(self, requested: str) -> Any:
        """Under several processes, `auto` is each process's own device."""
        return self.state.device if self.state is not None and requested == "auto" else requested

    def wait(self) -> None:
        """A barrier: every process gets here before any goes on."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def agree(self, settings: dict[str, Any]) -> None:
        """Refuse, in every process at once, a job whose processes would compute differently: `--dtype auto` picks
        per machine (bf16 where the CPU or GPU has it), and each machine reads its own copy of the model and lists
        its own videos."""
        if self.state is None:
            return
        from accelerate.utils import gather_object

        everyone = gather_object([settings])
        differing = sorted(
            {key for other in everyone for key in settings if other.get(key) != settings.get(key)}
        )
        if differing:
            values = "; ".join(
                f"{key}: "
                + ", ".join(f"{other.get(key)} (process {rank})" for rank, other in enumerate(everyone))
                for key in differing
            )
            self.close()  # every process stops here: leave the process group together, not at exit
            raise CLIError(
                f"The processes of this job would not compute alike ({values}): give every machine the same, e.g. "
                "--dtype fp32 or bf16 rather than auto, the same model files and the same videos."
            )

    def close(self) -> None:
        """Leave the process group, every process at once (a barrier first)."""
        if self.state is not None:
            import torch.distributed

            self.state.wait_for_everyone()
            torch.distributed.destroy_process_group()
            self.state = None

    def share(self, count: int) -> range:
        """This process's positions among `count` videos."""
        return range(self.rank, count, self.count)


def resolve_dtype_option(args: argparse.Namespace) -> None:
    """`--dtype auto` as what it picks here (bf16 on a GPU or a CPU with native bf16, else fp32), so that a job's
    settings record the dtype its results are computed in; [`say_dtype`] tells the user once the model is loaded.
    An ONNX export keeps `auto` (its precision was chosen when it was exported)."""
    from ..inference import auto_dtype, is_onnx_export

    backend = getattr(args, "backend", "auto")
    if args.dtype != "auto" or backend == "onnxruntime" or (backend == "auto" and is_onnx_export(args.model)):
        return
    args.dtype, args.dtype_chosen = auto_dtype(args.device), True


def say_dtype(args: argparse.Namespace) -> None:
    """One line on stderr when `--dtype auto` chose bf16 (results then differ from fp32's in the last digits)."""
    from ..inference import cpu_bf16_features, resolve_device

    if getattr(args, "dtype_chosen", False) and args.dtype == "bf16":
        args.dtype_chosen = False  # once
        cpu = resolve_device(args.device).type == "cpu"
        where = f"the CPU has {' and '.join(cpu_bf16_features())}" if cpu else "the GPU has it"
        print(
            f"Computing in bf16 ({where}: --dtype auto); --dtype fp32 gives the original's numbers exactly",
            file=sys.stderr,
        )


def idle_cpus_notice(local_processes: int, threads: int, cpus: int) -> str | None:
    """One line when a launcher left each of several processes on this machine's CPUs a single thread (`torchrun`
    and `accelerate launch` set `OMP_NUM_THREADS=1` unless told otherwise), so that most cores would sit idle."""
    share = cpus // local_processes
    if local_processes == 1 or threads > 1 or share < 2:
        return None
    return (
        f"Each of the {local_processes} processes on this machine computes on 1 thread (OMP_NUM_THREADS=1, the "
        f"launcher's default) though it has {cpus} CPUs: give each its share with `accelerate launch "
        f"--num_cpu_threads_per_process {share}` (torchrun: OMP_NUM_THREADS={share})."
    )


def load_engine(args: argparse.Namespace, processes: Processes, *, task: str, output: str) -> Any:
    """The model of `args.model` on this process's device, in an engine set up from the command's options."""
    import torch

    from ..inference import InferenceEngine, load_model, resolve_device

    resolve_dtype_option(args)
    model, processor = load_model(
        args.model,
        task=task,
        device=processes.device(args.device),
        dtype=args.dtype,
        attn_implementation=args.attn_implementation,
        compile=args.compile,
        revision=args.revision,
        backend=args.backend,
        onnx_file=args.onnx_file,
    )
    if processes.is_main:
        say_dtype(args)
        notice = idle_cpus_notice(processes.local_count, torch.get_num_threads(), os.cpu_count() or 1)
        if notice and resolve_device(processes.device(args.device)).type == "cpu":
            print(notice, file=sys.stderr)
    if args.frame_sampling:
        processor.frame_sampling = args.frame_sampling
    return InferenceEngine(
        model,
        processor,
        output=output,
        batch_size=args.batch_size,
        num_workers=default_num_workers(processes.local_count)
        if args.num_workers is None
        else args.num_workers,
        num_clips=args.num_clips,
        num_crops=args.num_crops,
        window=getattr(args, "window", None),
        stride=getattr(args, "stride", None),
    )


def settings(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """What determines a job's results: a resumed job must have the same, weights included (`model_fingerprint`:
    a model folder re-converted or re-trained in place is another model)."""
    from ..loading import model_fingerprint

    resolve_dtype_option(args)
    names = (
        "model",
        "revision",
        "backend",
        "onnx_file",
        "dtype",
        "num_clips",
        "num_crops",
        "frame_sampling",
        "window",
        "stride",
    )
    job = {name: getattr(args, name, None) for name in names}
    return {**job, "model_fingerprint": model_fingerprint(args.model, args.revision), **extra}


def video_fingerprints(videos: Sequence[Any]) -> list[str]:
    """What identifies each video's content (a resumed job redoes the videos that changed): a file's size and
    modification time, or a data set row's fingerprint (see `NamedVideos.fingerprints`)."""
    from ..files import file_fingerprint

    if hasattr(videos, "fingerprints"):
        return videos.fingerprints()
    return [file_fingerprint(video) for video in videos]


def dataset_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What identifies a `--dataset-name` source among a job's settings (row names like `validation/0` do not);
    nothing for files, which their paths name."""
    if not args.dataset_name:
        return {}
    return {"dataset": [args.dataset_name, args.dataset_config_name, args.split]}


def run_stored(
    args: argparse.Namespace,
    output: Path,
    videos: Sequence[Any],
    names: Sequence[str],
    *,
    task: str,
    engine_output: str,
    write: Callable[[Path, list], object],
    job_settings: dict[str, Any],
) -> list | None:
    """Run the videos not done yet into `output`'s parts, then (main process) merge them with `write`.

    Returns all results (failed ones included, in input order) on the main process; `None` on the others, and when
    `output` was already complete (nothing run).
    """
    from ..files import WriteLock, remove_leftovers
    from ..results import ResultStore

    processes = Processes()
    listed = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    processes.agree({**job_settings, "videos": f"{len(names)} listed ({listed})"})
    store = ResultStore(
        output,
        names,
        job_settings,
        fingerprints=video_fingerprints(videos),
        rank=processes.rank,
        overwrite=args.overwrite,
        flush_every=args.save_every,
    )
    # one job writes an output at a time; what an interrupted one left half-written is cleared
    with WriteLock(output) if processes.is_main else contextlib.nullcontext():
        if processes.is_main:
            remove_leftovers(output)
        if store.is_complete():
            if processes.is_main:
                print(
                    f"{output} is already complete for these videos and settings: nothing to do (--overwrite redoes "
                    "it)."
                )
            return None
        store.check()
        processes.wait()
        if processes.is_main:
            store.prepare()
        processes.wait()
        pending = store.pending(processes.share(len(videos)))
        if pending:
            engine = load_engine(args, processes, task=task, output=engine_output)
            try:
                for result in engine.run(videos, indices=pending, progress=processes.is_main):
                    store.add(result)
            finally:  # interrupted or failed: keep what is done for the next run
                store.flush()
        processes.wait()
        if not processes.is_main:
            return None
        results = store.finish(write)
    print_failures(results, store.report)
    return results


def raise_for_failures(results: Sequence[Any]) -> None:
    """The end of a job whose videos could not all be read (listed by [`print_failures`]): none read is an error
    (exit 1), some is `SomeInputsFailed` (exit 3), so that scripts do not take either for success."""
    failed = sum(result.error is not None for result in results)
    if failed and failed == len(results):
        raise CLIError(f"None of the {len(results)} videos could be read (see above): nothing to report.")
    if failed:
        raise SomeInputsFailed(
            f"{failed} of {len(results)} videos could not be read (listed above); the others' results are written."
        )


def print_failures(results: Sequence[Any], report: Path | None = None) -> None:
    """List the videos that could not be read, with the reason, on stderr."""
    import sys

    failed = [result for result in results if result.error is not None]
    if not failed:
        return
    where = f" (also in {report})" if report else ""
    print(f"Skipped {len(failed)} of {len(results)} videos that could not be read{where}:", file=sys.stderr)
    for result in failed:
        print(f"  {result.video}: {result.error}", file=sys.stderr)
