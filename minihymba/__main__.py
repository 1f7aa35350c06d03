"""Command line: ``python -m minihymba generate --model ID_OR_PATH --prompt "..."`` (also ``minihymba``).

Loads a checkpoint (local directory or hub id; ``HF_HUB_OFFLINE=1`` is honoured) and its tokenizer,
then streams the continuation to stdout as it is generated. Status messages go to stderr. Every problem
(model not found, bad checkpoint, bad option value, no such device ...) is reported as one
``minihymba: error: ...`` line on stderr saying what to fix, with exit code 1 (2 for a malformed command
line); ``--debug`` shows the Python traceback as well.

    python -m minihymba generate --model nvidia/Hymba-1.5B-Instruct --chat --prompt "Who are you?"
    python -m minihymba generate --model ./my-checkpoint --prompt "Once upon" --temperature 0.8 --top-p 0.9
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

import torch

__all__ = ["main", "build_parser", "TextPrinter"]

EXIT_ERROR = 1  # a failure while running; argparse's usage errors exit with 2
EXIT_USAGE = 2
SEED_RANGE = (0, 2**64 - 1)  # what torch.Generator.manual_seed accepts


class TextPrinter:
    """A generation streamer that prints the decoded text of row 0 as tokens arrive.

    Decodes the whole continuation each step and writes only the new suffix, so pieces that merge
    (leading-space markers, multi-token characters) come out right.
    """

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int] = (), out: Any = None) -> None:
        self.tokenizer, self.stop_ids, self.out = tokenizer, set(stop_ids), out or sys.stdout
        self.ids: list[int] = []
        self.printed = ""
        self.stopped = False
        self.count = 0

    def put(self, ids: torch.Tensor) -> None:
        token = int(ids[0])
        if self.stopped:
            return
        self.count += 1
        if token in self.stop_ids:
            self.stopped = True
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.startswith(self.printed):
            self.out.write(text[len(self.printed) :])
            self.out.flush()
            self.printed = text

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one ``minihymba: error: ...`` line like every other failure."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"minihymba: error: {message}\n")


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    """The ``--model`` option: defined here only. Without it the shipped ``tiny-text`` model runs, offline."""
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint directory or hub id (e.g. nvidia/Hymba-1.5B-Base); default: the shipped tiny-text "
        "model (a 2M-parameter Hymba trained on the Python docs, runs offline; "
        "see minihymba/assets/tiny-text/README.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``minihymba`` command line (sub-command ``generate``)."""
    parser = _Parser(prog="minihymba", description="minihymba: a readable Hymba in PyTorch")
    parser.add_argument("--debug", action="store_true", help="on an error, also print the Python traceback")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    gen = commands.add_parser("generate", help="generate text from a prompt (streams to stdout)")
    _add_model_option(gen)
    gen.add_argument("--prompt", required=True, help="the prompt text (the user message with --chat)")
    gen.add_argument("--chat", action="store_true", help="wrap the prompt in the Instruct chat format")
    gen.add_argument("--system", default=None, help="system message for --chat")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.add_argument(
        "--dtype",
        choices=["bf16", "fp32"],
        default=None,
        help="weights dtype (default: bf16 on CUDA, fp32 on CPU)",
    )
    gen.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    gen.add_argument(
        "--temperature", type=float, default=0.0, help="0 (default): greedy; > 0: sample at this temperature"
    )
    gen.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens")
    gen.add_argument("--top-p", type=float, default=None, help="sample from the top-p probability mass")
    gen.add_argument("--seed", type=int, default=None, help="seed for sampling")
    gen.add_argument("--hub-compat", action="store_true", help="decode like NVIDIA's cached generate")
    gen.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,  # leaves the top-level --debug as it was when not given here
        help="on an error, also print the Python traceback",
    )
    return parser


class CommandError(Exception):
    """A problem to report as one ``minihymba: error:`` line (the message says what to fix)."""


# errors whose message is reported as it is (minihymba raises these with the culprit and the fix)
_REPORTED = (CommandError, ValueError, TypeError, OSError, MemoryError, FloatingPointError)


def _one_line(message: str) -> str:
    """The whole message on one line (a library error's later lines hold its hint: keep them)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise CommandError(f"--device {name!r} is not a device: use cpu, cuda or cuda:N") from err
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # e.g. a CPU-only torch, or no such GPU
        raise CommandError(
            f"--device {name}: that device is not available here ({_one_line(str(err))}); use --device cpu"
        ) from err
    return device


def _generate(args: argparse.Namespace) -> int:
    from .assets import assets_path
    from .generation import check_generate_arguments, generate
    from .hub import resolve_checkpoint
    from .loading import load_pretrained
    from .tokenizer import load_tokenizer, render_chat

    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise CommandError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    if args.seed is not None and not SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]:
        raise CommandError(f"--seed must be in [0, 2**64 - 1], got {args.seed}")
    do_sample = args.temperature > 0 or args.top_k is not None or args.top_p is not None
    temperature = args.temperature if args.temperature > 0 else 1.0
    try:
        check_generate_arguments(args.max_new_tokens, do_sample, temperature, args.top_k, args.top_p)
    except ValueError as err:
        option = {"max_new_tokens": "--max-new-tokens", "top_k": "--top-k", "top_p": "--top-p"}
        message = str(err)
        for name, flag in option.items():
            message = message.replace(name, flag)
        raise CommandError(message) from err
    device = _device(args.device)
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")

    if args.model is None:
        args.model = str(assets_path("tiny-text"))
    print(f"minihymba: locating {args.model} ...", file=sys.stderr, flush=True)
    directory = resolve_checkpoint(args.model)
    tokenizer = load_tokenizer(directory)
    print(
        f"minihymba: loading weights from {directory} ({dtype}, {device}) ...",
        file=sys.stderr,
        end="",
        flush=True,
    )
    start = time.perf_counter()
    try:
        model = load_pretrained(directory, dtype=dtype, device=device).eval()
    except BaseException:
        print(file=sys.stderr)  # end the "loading weights ..." line before the error
        raise
    print(
        f" done in {time.perf_counter() - start:.1f} s ({model.num_parameters():,} parameters)",
        file=sys.stderr,
        flush=True,
    )

    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.prompt}
        ]
        ids = tokenizer(render_chat(messages), add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(args.prompt)["input_ids"]
    if not ids:
        raise CommandError("the prompt encodes to no tokens: give a non-empty --prompt")
    input_ids = torch.tensor([ids], device=device)  # (1, T)

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
    generator = None
    if do_sample and args.seed is not None:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    printer = TextPrinter(tokenizer, stop_ids=[] if eos is None else [eos])
    start = time.perf_counter()
    generate(
        model,
        input_ids,
        max_new_tokens=args.max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        eos_token_id=eos,
        generator=generator,
        hub_compat=args.hub_compat,
        streamer=printer,
    )
    seconds = time.perf_counter() - start
    rate = printer.count / max(seconds, 1e-9)
    print(
        f"minihymba: {printer.count} new tokens in {seconds:.2f} s ({rate:.1f} tokens/s, prefill included)",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0, 1 for a failure, 2 for a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return _generate(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as err:  # every failure: one line (the traceback only with --debug)
        if args.debug:
            traceback.print_exc()
        message = _one_line(str(err)) or "(no message)"
        # the library's own errors say what is wrong; anything else is named by its type as well
        kind = "" if isinstance(err, _REPORTED) else f"{type(err).__name__}: "
        print(f"minihymba: error: {kind}{message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
