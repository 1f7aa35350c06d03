"""Command line: ``python -m minihymba generate --model ID_OR_PATH --prompt "..."`` (also ``minihymba``).

Loads a checkpoint (local directory or hub id; ``HF_HUB_OFFLINE=1`` is honoured) and its tokenizer,
then streams the continuation to stdout as it is generated. Status messages go to stderr; problems
(model not found, bad checkpoint) are reported on one line with a non-zero exit code.

    python -m minihymba generate --model nvidia/Hymba-1.5B-Instruct --chat --prompt "Who are you?"
    python -m minihymba generate --model ./my-checkpoint --prompt "Once upon" --temperature 0.8 --top-p 0.9
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["main", "build_parser", "TextPrinter"]

EXIT_ERROR = 2


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minihymba", description="minihymba: a readable Hymba in PyTorch")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    gen = commands.add_parser("generate", help="generate text from a prompt (streams to stdout)")
    gen.add_argument("--model", required=True, help="checkpoint directory or hub id (nvidia/Hymba-1.5B-Base)")
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
    return parser


def _fail(message: str) -> int:
    print(f"minihymba: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _generate(args: argparse.Namespace) -> int:
    from .generation import check_generate_arguments, generate
    from .hub import resolve_checkpoint
    from .loading import CheckpointError, load_pretrained
    from .tokenizer import load_tokenizer, render_chat

    if args.temperature < 0:
        return _fail(f"--temperature must be >= 0, got {args.temperature}")
    do_sample = args.temperature > 0 or args.top_k is not None or args.top_p is not None
    temperature = args.temperature if args.temperature > 0 else 1.0
    try:
        check_generate_arguments(args.max_new_tokens, do_sample, temperature, args.top_k, args.top_p)
    except ValueError as err:
        return _fail(str(err))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")

    print(f"minihymba: locating {args.model} ...", file=sys.stderr, flush=True)
    try:
        directory = resolve_checkpoint(args.model)
        tokenizer = load_tokenizer(directory)
    except (FileNotFoundError, OSError, ValueError) as err:
        return _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    print(
        f"minihymba: loading weights from {directory} ({dtype}, {device}) ...",
        file=sys.stderr,
        end="",
        flush=True,
    )
    start = time.perf_counter()
    try:
        model = load_pretrained(directory, dtype=dtype, device=device).eval()
    except (FileNotFoundError, CheckpointError, OSError, ValueError) as err:
        print(file=sys.stderr)
        return _fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
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
        return _fail("the prompt encodes to no tokens")
    input_ids = torch.tensor([ids], device=device)  # (1, T)

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
    generator = None
    if do_sample and args.seed is not None:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    printer = TextPrinter(tokenizer, stop_ids=[] if eos is None else [eos])
    start = time.perf_counter()
    try:
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
    except ValueError as err:
        return _fail(str(err))
    seconds = time.perf_counter() - start
    rate = printer.count / max(seconds, 1e-9)
    print(
        f"minihymba: {printer.count} new tokens in {seconds:.2f} s ({rate:.1f} tokens/s, prefill included)",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return _generate(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
