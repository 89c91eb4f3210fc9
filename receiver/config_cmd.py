"""`gla config input CAPTURE`: the receiver's ``[input]`` section, written from a capture's sidecar.

A capture's sidecar already says what ``gla receive`` must be told about a stream of it: the
number of inputs, the sample rate, the map of inputs to bus, feeder and phase, and the scale of
its values. This writes them as the TOML ``[input]`` section of ``deploy/receiver.example.toml``
so that a stream of the capture (a GNU Radio flowgraph playing its WAV, or ``CaptureSender``)
is received with the right channel map and units, with nothing typed by hand.

Scale (one convention, docs/gnuradio.md): physical value = stream value x ``scale``. A GNU Radio
file source reads the WAV normalised to +-1 of full scale, i.e. the sidecar's file values
(``file value = per-unit current x gla:scale``), so ``scale = 1 / gla:scale``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "input_section"]


def input_section(
    capture: str | Path,
    *,
    endpoint: str = "tcp://127.0.0.1:5555",
    pattern: str = "pull",
    framing: str = "gr",
    pass_tags: bool = True,
    sample_type: str = "float32",
) -> str:
    """The ``[input]`` TOML section for a stream of ``capture`` (its stem or sidecar path)."""
    from receiver.contracts.capture import read_capture_meta

    meta = read_capture_meta(capture)
    lines = [
        f"# [input] for a stream of {Path(meta.meta_path).name} (written by gla config input)",
        "[input]",
        f'endpoint = "{endpoint}"',
        f'pattern = "{pattern}"',
        f'framing = "{framing}"',
        f"n_channels = {meta.n_channels}",
        f"sample_rate_hz = {float(meta.fs_hz)!r}",
    ]
    if framing == "gr":
        # a file source gives the file's values (integers are normalised to +-1 first, as
        # everywhere: a Float To Short block scaled by 32768 keeps the same scale)
        scale = 1.0 / meta.scale
        lines += [
            f'sample_type = "{sample_type}"',
            f"pass_tags = {'true' if pass_tags else 'false'}",
            f"scale = {scale!r}  # physical = stream value x scale",
        ]
    lines.append("channels = [")
    for c in sorted(meta.channels, key=lambda c: int(c["index"])):
        lines.append(
            f"  {{ index = {int(c['index'])}, bus = {int(c['bus'])}, feeder = {int(c['feeder'])}, "
            f'phase = "{c["phase"]}" }},'
        )
    lines.append("]")
    return "\n".join(lines) + "\n"


def _cmd_config_input(args: argparse.Namespace) -> int:
    text = input_section(
        args.capture,
        endpoint=args.endpoint,
        pattern=args.pattern,
        framing=args.framing,
        pass_tags=not args.no_pass_tags,
        sample_type=args.sample_type,
    )
    if args.to_file:
        Path(args.to_file).write_text(text)
        print(f"wrote the [input] section to {args.to_file}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(sub, add, common: argparse.ArgumentParser) -> None:
    """Add ``gla config input`` to the ``gla`` command's subparsers (``add``: the CLI's parser
    factory, which gives every page its defaults and the exit statuses)."""
    c = add(sub, "config", parents=[common], help="write parts of the receiver's configuration")
    csub = c.add_subparsers(dest="config_command", required=True, metavar="PART")
    i = add(
        csub,
        "input",
        parents=[common],
        help="print the receiver's [input] section for a stream of a capture (from its sidecar)",
    )
    i.add_argument("capture", help="capture stem or .sigmf-meta path (e.g. captures/demo_small)")
    i.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="where the sink binds (the receiver connects)")
    i.add_argument("--pattern", choices=["pull", "sub"], default="pull", help="PUSH sink: pull; PUB sink: sub")
    i.add_argument(
        "--framing", choices=["gr", "gla"], default="gr", help="gr: a GNU Radio ZMQ sink; gla: the GLA framing"
    )
    i.add_argument("--no-pass-tags", action="store_true", help="the sink has pass_tags off (losses go unseen)")
    i.add_argument(
        "--sample-type", choices=["float32", "int16", "int32", "float64"], default="float32", help="the sink's IO type"
    )
    i.add_argument("--to-file", metavar="FILE", default=None, help="write to this file (default: standard output)")
    i.set_defaults(func=_cmd_config_input)
